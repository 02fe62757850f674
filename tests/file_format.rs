//! The bgrun.toml format: its generated schema is checked in and current, the example documents
//! every key, every `run` flag has a key and every key a flag, and every example project loads.

use bgrun::project::file::{job_keys, schema};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_checked_in_schema_is_generated_from_the_types() {
    let path = root().join("schemas/bgrun.schema.json");
    let generated = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
    if std::env::var_os("BGRUN_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).expect("schemas/bgrun.schema.json");
    assert!(
        checked_in == generated,
        "schemas/bgrun.schema.json is stale: run `BGRUN_BLESS=1 cargo test --test file_format`"
    );
}

#[test]
fn the_example_loads_and_shows_every_key() {
    let path = root().join("bgrun.toml.example");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example is the documentation: every key appears in it, set or commented.
    for key in job_keys() {
        assert!(text.contains(&format!("{key} =")), "bgrun.toml.example does not show `{key}`");
    }
    let project =
        bgrun::project::load::parse(&path, text, &Default::default()).unwrap_or_else(|p| panic!("{:?}", p.report()));
    assert!(!project.jobs.is_empty());
}

#[test]
fn every_run_flag_has_a_key_and_every_key_a_flag() {
    use clap::CommandFactory;
    let cli = bgrun::cli::Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    let mut flags: Vec<String> = run.get_arguments().filter_map(|a| a.get_long().map(String::from)).collect();
    // Flags that have a different spelling in the file, or belong to the command line only.
    // `--force` is about one start, not the job: `up --force` and `deploy --force` give it.
    let renamed = BTreeMap::from([
        ("name", "[jobs.<name>]"),
        ("env", "env"),
        ("json", ""),
        ("force", ""),
        ("no-config", "config = false"),
    ]);
    flags.retain(|f| !renamed.contains_key(f.as_str()));
    let keys = job_keys();
    for flag in &flags {
        assert!(keys.contains(flag), "`bgrun run --{flag}` has no key in bgrun.toml");
    }
    // Keys only a file can have: the command, env files, named environments (chosen by `up --env`),
    // replicas (copies named after the file's job), and the watch settings of `up --watch`.
    let file_only = [
        "cmd",
        "env",
        "env-file",
        "environments",
        "replicas",
        "watch",
        "watch-ignore",
        "restart-with-dependencies",
        "disabled",
        // Read by `bgrun export` only.
        "image",
    ];
    for key in &keys {
        assert!(flags.contains(key) || file_only.contains(&key.as_str()), "bgrun.toml key `{key}` has no `run` flag");
    }
}

#[test]
fn every_example_project_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap().flatten() {
        let file = entry.path().join("bgrun.toml");
        if file.is_file() {
            bgrun::project::load::load(&file, &Default::default()).unwrap_or_else(|p| panic!("{:?}", p.report()));
            count += 1;
        }
    }
    assert!(count >= 3, "examples/ should hold at least three projects, found {count}");
}
