//! The exporters against the table of keys: every key the fixture sets is, for each format,
//! found in the output where the table says it is translated, and reported where the table says
//! it is dropped.

use super::keys::{Cell, KEYS};
use super::*;
use crate::project::load;

fn fixture() -> (Project, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export/everything");
    let file = dir.join("bgrun.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let project = load::load(&file, &load::Options::default()).unwrap_or_else(|p| panic!("{:?}", p.report()));
    (project, text)
}

fn run(format: Format, project: &Project, systemd_version: u32) -> Exported {
    let out_dir = project.file.parent().unwrap().to_path_buf();
    let input = Input { project, source: "bgrun.toml".into(), out_dir, systemd_version, environment: None };
    export(format, &input)
}

#[test]
fn every_key_the_fixture_sets_is_translated_or_reported_as_the_table_says() {
    let (project, text) = fixture();
    for format in [Format::Systemd, Format::Compose, Format::Kubernetes] {
        let exported = run(format, &project, DEFAULT_SYSTEMD_VERSION);
        let output: String = exported.files.iter().map(|f| format!("{}\n{}", f.name, f.text)).collect();
        let reported = |key: &str| exported.untranslated.iter().any(|u| u.key == key);
        for u in &exported.untranslated {
            assert_eq!(keys::named(&u.key).key, u.key, "{format:?} reports a key that is not in the table: {u:?}");
        }
        for row in KEYS {
            let set = row.key.starts_with('[') || text.contains(&format!("\n{} =", row.key));
            assert!(set, "the fixture does not set `{}`", row.key);
            match row.cell(format) {
                Cell::To { target, .. } => {
                    assert!(output.contains(target), "{format:?}: `{}` should write `{target}`", row.key)
                }
                Cell::Partly { target, .. } => assert!(
                    output.contains(target) || reported(row.key),
                    "{format:?}: `{}` should write `{target}` or be reported",
                    row.key
                ),
                Cell::Dropped { .. } => assert!(reported(row.key), "{format:?}: `{}` should be reported", row.key),
                Cell::Ignored { .. } => assert!(!reported(row.key), "{format:?}: `{}` is reported", row.key),
            }
        }
    }
}

#[test]
fn output_is_the_same_every_time() {
    let (project, _) = fixture();
    for format in [Format::Systemd, Format::Compose, Format::Kubernetes] {
        let (a, b) = (run(format, &project, 254), run(format, &project, 254));
        assert_eq!(a.files, b.files);
        assert_eq!(a.untranslated, b.untranslated);
    }
}

#[test]
fn copies_fold_back_into_one_job_with_a_count() {
    let (project, _) = fixture();
    let jobs = jobs(&project);
    let api = jobs.iter().find(|j| j.name == "api").unwrap();
    assert_eq!(api.replicas, Some(2));
    assert!(!api.spec.declared_env.contains_key("BGRUN_REPLICA"));
    assert_eq!(jobs.iter().filter(|j| j.name.starts_with("api")).count(), 1);
    assert_eq!(api.image, Some("python:3.12-slim"));
}

#[test]
fn checks_as_shell_commands() {
    assert_eq!(Check::Port(80).shell(), "nc -z 127.0.0.1 80 || bash -c ': </dev/tcp/127.0.0.1/80'");
    assert_eq!(Check::File("a b".into()).shell(), "test -e 'a b'");
    let both = Check::all(&[Check::Port(1), Check::Exec("x; y".into())]).unwrap();
    assert_eq!(both, "( nc -z 127.0.0.1 1 || bash -c ': </dev/tcp/127.0.0.1/1' ) && ( x; y )");
    assert_eq!(url_port("https://h/x"), Some(443));
    assert_eq!(url_port("http://127.0.0.1:8080/health?x"), Some(8080));
    assert_eq!(url_path("http://h:1/a/b?c"), "/a/b?c");
    assert_eq!(url_path("http://h:1"), "/");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

#[test]
fn a_container_ready_when_healthy_is_left_to_its_engine() {
    let text = "[jobs.db]\ncmd = 'docker run --rm postgres:16'\nready-when = 'healthy'\n\
                [jobs.app]\ncmd = 'sleep 1'\nimage = 'busybox'\nafter = 'db'\n";
    let file = std::env::temp_dir().join("bgrun.toml");
    let project =
        load::parse(&file, text.into(), &load::Options::default()).unwrap_or_else(|p| panic!("{:?}", p.report()));
    let compose = &run(Format::Compose, &project, DEFAULT_SYSTEMD_VERSION).files[0].text;
    assert!(compose.contains("condition: \"service_healthy\""), "{compose}");
    assert!(!compose.contains("healthcheck"), "the image's own: {compose}");
    let kubernetes = run(Format::Kubernetes, &project, DEFAULT_SYSTEMD_VERSION);
    assert!(kubernetes.untranslated.iter().any(|u| u.job == "db" && u.key == "ready-when"));
    // systemd runs the container on the machine, where bgrun's question to the engine still works.
    let systemd = run(Format::Systemd, &project, DEFAULT_SYSTEMD_VERSION);
    assert!(systemd.files.iter().any(|f| f.text.contains("docker inspect")));
}
