//! `bgrun import`: real fixtures (PM2 ecosystem files as .js, .mjs, .json and .yaml, Procfiles,
//! process-compose files) imported by the built binary, the results loaded by `bgrun plan` and
//! compared with their golden files, and imported projects run by `bgrun up`.
//! `BGRUN_UPDATE_GOLDEN=1 cargo test --test import` rewrites the golden files.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

/// A copy of a fixture directory in the test's home, so imports can write beside it.
fn copy(b: &Bgrun, name: &str) -> PathBuf {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = b.home.join("projects").join(name);
    copy_dir(&fixtures().join(name), &dir);
    dir.canonicalize().unwrap()
}

fn run(b: &Bgrun, dir: &Path, args: &[&str]) -> Output {
    b.cmd(args).current_dir(dir).env_remove("API_PORT").env_remove("QUEUE").env_remove("APP_ENV").output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The keys reported on stderr (JSON lines, as stderr is a pipe here).
fn not_imported(out: &Output) -> Vec<Value> {
    stderr(out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .map(|v| v["not_imported"].clone())
        .collect()
}

/// Each fixture: its directory, the file imported, and whether its result is the same everywhere
/// (the JavaScript one reads the CPU count and the environment).
const FIXTURES: &[(&str, &str, bool)] = &[
    ("pm2-js", "ecosystem.config.js", false),
    ("pm2-esm", "ecosystem.config.mjs", true),
    ("pm2-json", "ecosystem.json", true),
    ("pm2-yaml", "ecosystem.yaml", true),
    ("procfile", "Procfile", true),
    ("process-compose", "process-compose.yaml", true),
];

#[test]
fn every_fixture_imports_as_its_golden_file_and_loads() {
    let b = Bgrun::new(SECS(120));
    for (name, file, golden) in FIXTURES {
        let dir = copy(&b, name);
        let out = run(&b, &dir, &["import", file]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["from"], *file, "{summary}");
        for line in not_imported(&out) {
            for field in ["file", "key", "reason"] {
                assert!(line[field].is_string(), "{name}: {line}");
            }
        }
        let written = std::fs::read_to_string(dir.join("bgrun.toml")).unwrap();
        if *golden {
            let expected = fixtures().join(name).join("expected.toml");
            if std::env::var_os("BGRUN_UPDATE_GOLDEN").is_some() {
                std::fs::write(&expected, &written).unwrap();
            }
            let expected = std::fs::read_to_string(&expected).unwrap_or_default();
            assert!(written == expected, "{name}: the import differs from expected.toml:\n{written}");
        }
        let plan = run(&b, &dir, &["plan"]);
        assert!(plan.status.success(), "{name}: plan failed: {}\n{written}", stderr(&plan));
        let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
        // Every job is there to create, but a disabled one, which `up` leaves alone.
        assert!(!plan["changes"].as_array().unwrap().is_empty(), "{name}: {plan}");
    }
}

#[test]
fn javascript_ecosystem_files_compute_their_values_from_the_environment() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-js");
    let out = b
        .cmd(&["import", "ecosystem.config.js", "--dry-run"])
        .current_dir(&dir)
        .env("API_PORT", "4100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        toml.contains(r#"cmd = ["node", "--enable-source-maps", "server.js", "--port", "4100", "--host", "0.0.0.0"]"#),
        "{toml}"
    );
    assert!(toml.contains("PM2's cluster mode shared PORT=4100"), "{toml}");
    assert!(toml.contains("stdout = \"logs/api-out.log\""), "{toml}");
    let cpus = std::thread::available_parallelism().unwrap().get();
    if cpus > 1 {
        assert!(toml.contains(&format!("replicas = {cpus}")), "{toml}");
    }
    let reported: Vec<String> = not_imported(&out).iter().map(|u| u["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(reported, vec!["deploy", "wait_ready", "increment_var", "pmx"]);
}

#[test]
fn a_json_ecosystem_file_with_comments_is_read_as_pm2_reads_it() {
    let b = Bgrun::new(SECS(60));
    let dir = b.home.join("json5");
    std::fs::create_dir_all(&dir).unwrap();
    let text = "// PM2 evaluates .json files as JavaScript\n{ apps: [ { name: 'api', script: 'server.js', }, ], }\n";
    std::fs::write(dir.join("ecosystem.json"), text).unwrap();
    let out = run(&b, &dir, &["import", "ecosystem.json", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[jobs.api]\ncmd = [\"node\", \"server.js\"]"));
}

#[test]
fn dry_run_prints_the_file_and_writes_nothing() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-json");
    let out = run(&b, &dir, &["import", "ecosystem.json", "--dry-run", "-o", "other.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# Imported from ecosystem.json"));
    assert!(!dir.join("other.toml").exists() && !dir.join("bgrun.toml").exists());
}

#[test]
fn an_existing_file_is_overwritten_only_with_force() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "procfile");
    std::fs::write(dir.join("bgrun.toml"), "# mine\n").unwrap();
    let out = run(&b, &dir, &["import", "Procfile"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("exists; nothing was written"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.join("bgrun.toml")).unwrap(), "# mine\n");
    let out = run(&b, &dir, &["import", "Procfile", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(dir.join("bgrun.toml")).unwrap().contains("[jobs.web]"));
    // No temporary file is left beside it.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".import-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn output_elsewhere_gets_paths_that_lead_back_to_the_source() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-json");
    std::fs::create_dir_all(dir.join("deploy")).unwrap();
    let out = run(&b, &dir, &["import", "ecosystem.json", "-o", "deploy/bgrun.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(dir.join("deploy/bgrun.toml")).unwrap();
    assert!(toml.contains("cwd = \"../app\""), "{toml}");
    let plan = run(&b, &dir.join("deploy"), &["plan"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
}

#[test]
fn strict_refuses_a_source_with_keys_left_out() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-yaml");
    let out = run(&b, &dir, &["import", "ecosystem.yaml", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!dir.join("bgrun.toml").exists());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.last().unwrap().contains("--strict: 3 key(s) could not be imported; nothing was written"),
        "{lines:?}"
    );
    let reported: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["not_imported"].clone())
        .collect();
    assert_eq!(reported.len(), 3);
    assert_eq!(reported[1]["app"], "scheduler");
    assert_eq!(reported[1]["key"], "no_such_option");
    assert_eq!(reported[1]["file"], "ecosystem.yaml");
    // A source that maps whole passes --strict.
    let dir = copy(&b, "pm2-esm");
    let out = run(&b, &dir, &["import", "ecosystem.config.mjs", "--strict"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_person_reads_one_line_per_key_left_out() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-yaml");
    let shown = b.on_terminal("import ecosystem.yaml --dry-run 2>&1 >/dev/null", Some(&dir), b"");
    assert!(
        shown.contains(
            "not imported: ecosystem.yaml, app \"scheduler\": `no_such_option` not imported: not a PM2 setting"
        ),
        "{shown}"
    );
}

#[test]
fn broken_sources_give_one_clear_error_and_write_nothing() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-bad");
    let cases: &[(&str, &str)] = &[
        ("throws.config.js", "cannot evaluate throws.config.js with node: Error: Cannot find module './secrets.json'"),
        ("loops.config.js", "loops.config.js did not finish evaluating within 1s"),
        ("yaml.config.js", "cannot evaluate yaml.config.js with node: SyntaxError"),
        ("noscript.json", "noscript.json: app \"api\" has no script"),
        ("broken.yaml", "broken.yaml is not valid YAML"),
        ("missing.json", "cannot read"),
    ];
    for (file, expected) in cases {
        let started = std::time::Instant::now();
        let out = b.cmd(&["import", file]).current_dir(&dir).env("BGRUN_IMPORT_TIMEOUT", "1s").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{file}: one line: {err}");
        assert!(err.starts_with("error: ") && err.contains(expected), "{file}: {err}");
        assert!(!dir.join("bgrun.toml").exists(), "{file} wrote a file");
        assert!(started.elapsed() < SECS(8), "{file} took {:?}", started.elapsed());
    }
    assert!(stderr(&b.cmd(&["import", "throws.config.js"]).current_dir(&dir).output().unwrap()).contains("(line 1)"));
}

#[test]
fn without_node_a_javascript_file_says_so_and_the_other_forms_still_import() {
    let b = Bgrun::new(SECS(60));
    let dir = copy(&b, "pm2-esm");
    let empty = b.home.join("no-node-here");
    std::fs::create_dir_all(&empty).unwrap();
    let out = b.cmd(&["import", "ecosystem.config.mjs"]).current_dir(&dir).env("PATH", &empty).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("node is not installed") && err.contains("the .json and .yaml forms"), "{err}");
    let dir = copy(&b, "pm2-yaml");
    let out = b.cmd(&["import", "ecosystem.yaml"]).current_dir(&dir).env("PATH", &empty).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_pm2_mapping_prints_as_a_table() {
    let b = Bgrun::new(SECS(30));
    let out = b.run_raw(&["import", "--mapping", "pm2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("| PM2 | bgrun.toml | notes |\n|---|---|---|\n"), "{table}");
    assert!(table.contains("| `max_memory_restart` | `max-rss` | approximate: "), "{table}");
    // The README holds the same table: src/project/import/pm2_keys.rs checks it.
    let both = b.run_raw(&["import", "--mapping", "pm2", "ecosystem.json"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

/// Waits for a line of the job's output containing `text`.
fn line_of(b: &Bgrun, job: &str, text: &str) -> String {
    wait_until(&format!("{job} to print {text:?}"), SECS(20), || {
        b.tail_text(job, 20).into_iter().find(|l| l.contains(text))
    })
}

#[test]
fn imported_pm2_apps_run_with_their_environment_and_cwd() {
    let b = Bgrun::new(SECS(90));
    let dir = copy(&b, "run-pm2");
    let out =
        b.cmd(&["import", "ecosystem.config.js"]).current_dir(&dir).env("IMPORT_GREETING", "hi").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The value the file computed at import is in bgrun.toml: `up` runs without it.
    let up = run(&b, &dir, &["up"]);
    assert!(up.status.success(), "{}\n{}", stderr(&up), String::from_utf8_lossy(&up.stdout));
    let web = line_of(&b, "web", "greeting=");
    assert_eq!(web, format!("cwd={} greeting=hi", dir.join("web").display()));
    let ticker = line_of(&b, "ticker", "args=");
    assert_eq!(ticker, "args=one|two words shell=bash");
    let down = run(&b, &dir, &["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
}

#[test]
fn an_imported_procfile_runs_with_its_dotenv_and_a_port() {
    let b = Bgrun::new(SECS(90));
    let dir = copy(&b, "run-procfile");
    let out = run(&b, &dir, &["import", "Procfile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let up = run(&b, &dir, &["up"]);
    assert!(up.status.success(), "{}\n{}", stderr(&up), String::from_utf8_lossy(&up.stdout));
    let line = line_of(&b, "greeter", "greeting=");
    let port = line.strip_prefix("greeting=from-dotenv port=").unwrap_or_else(|| panic!("{line}"));
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{line}");
    let down = run(&b, &dir, &["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
}
