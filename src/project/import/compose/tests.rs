use super::*;
use serde_json::json;
use std::path::PathBuf;

fn cx() -> Context {
    Context { file: "process-compose.yaml".into(), dir: PathBuf::from("/nonexistent"), base: PathBuf::new(), cpus: 2 }
}

fn render(config: Value) -> (String, Vec<String>) {
    let draft = translate(&config, &cx()).unwrap();
    (draft.render(), draft.unsupported.iter().map(|u| u.key.clone()).collect())
}

#[test]
fn commands_run_through_the_projects_shell() {
    let (toml, _) = render(json!({"processes": {"a": {"command": "echo hi"}, "b": {"entrypoint": ["sleep", 5]}}}));
    assert!(toml.contains("cmd = [\"bash\", \"-c\", \"echo hi\"]"), "{toml}");
    assert!(toml.contains("cmd = [\"sleep\", \"5\"]"), "{toml}");
    let (toml, _) = render(json!({
        "shell": {"shell_command": "zsh", "shell_argument": "-lc"},
        "processes": {"a": {"command": "echo hi"}}
    }));
    assert!(toml.contains("cmd = [\"zsh\", \"-lc\", \"echo hi\"]"), "{toml}");
}

#[test]
fn dependencies_keep_their_conditions() {
    let (toml, _) = render(json!({"processes": {
        "app": {"command": "x", "depends_on": {
            "db": {"condition": "process_healthy"}, "migrate": {"condition": "process_completed_successfully"},
            "cache": {"condition": "process_started"}, "logs": {"condition": "process_log_ready"}
        }},
        "db": {"command": "x"}, "migrate": {"command": "x"}, "cache": {"command": "x"}, "logs": {"command": "x"},
        "report": {"command": "x", "depends_on": {"app": {"condition": "process_completed"}}}
    }}));
    assert!(
        toml.contains("after = { cache = \"started\", db = \"ready\", logs = \"ready\", migrate = \"completed\" }"),
        "{toml}"
    );
    assert!(toml.contains("process_completed waited for the process to end"), "{toml}");
    assert!(toml.contains("after = { app = \"ready-or-ended\" }"), "{toml}");
}

#[test]
fn probes_become_readiness_and_health_checks() {
    let (toml, reported) = render(json!({"processes": {"api": {
        "command": "x",
        "readiness_probe": {"http_get": {"host": "localhost", "port": 8080, "path": "/ready"}, "period_seconds": 2},
        "liveness_probe": {"exec": {"command": "pg_isready"}, "period_seconds": 5, "timeout_seconds": 2,
                           "failure_threshold": 4, "initial_delay_seconds": 3, "success_threshold": 1}
    }}}));
    for line in [
        "ready-when-url = \"http://localhost:8080/ready\"",
        "ready-timeout = \"6s\"",
        "health-check-exec = \"pg_isready\"",
        "health-interval = \"5s\"",
        "health-timeout = \"2s\"",
        "health-threshold = 4",
        "health-start-period = \"3s\"",
    ] {
        assert!(toml.contains(line), "{line}: {toml}");
    }
    assert!(reported.is_empty(), "{reported:?}");
    let (toml, reported) = render(json!({"processes": {"api": {
        "command": "x", "readiness_probe": {"http_get": {"port": "80", "headers": {"X": "1"}}},
        "liveness_probe": {"http_get": {"scheme": "https", "host": "example.test", "path": "/h"}}
    }}}));
    assert!(toml.contains("health-check-url = \"https://example.test/h\""), "{toml}");
    assert_eq!(reported, vec!["readiness_probe"]);
}

#[test]
fn restarts_shutdown_and_flags() {
    let (toml, reported) = render(json!({"processes": {"a": {
        "command": "x",
        "availability": {"restart": "always", "backoff_seconds": 3, "exit_on_end": true},
        "shutdown": {"command": "stop-it", "signal": 15, "timeout_seconds": 7, "parent_only": true, "send_keys": "q"},
        "is_daemon": true, "is_tty": true, "disabled": true, "replicas": 3, "namespace": ["ns"],
        "log_location": "a.log", "ready_log_line": "up", "description": "the a process", "x-owner": "me"
    }}}));
    for line in [
        "restart = \"always\"",
        "restart-delay = \"3s\"",
        "process-compose restarted without limit",
        "stop-command = \"stop-it\"",
        "stop-signal = \"SIGTERM\"",
        "grace = \"7s\"",
        "kill-mode = \"main\"",
        "daemonizes = true",
        "pty = true",
        "disabled = true",
        "replicas = 3",
        "workspace = \"ns\"",
        "log = \"a.log\"",
        "ready-when = \"up\"",
        "# the a process",
    ] {
        assert!(toml.contains(line), "{line}: {toml}");
    }
    assert_eq!(reported, vec!["availability.exit_on_end", "shutdown.send_keys"]);
    let (toml, _) = render(json!({"processes": {"a": {"command": "x", "availability": {"restart": "on_failure"}}}}));
    assert!(toml.contains("restart = \"on-crash\""), "{toml}");
}

#[test]
fn the_projects_environment_and_name() {
    let (toml, reported) = render(json!({
        "version": "0.5", "name": "shop", "environment": ["A=1", "B=x=y", "broken"],
        "log_level": "debug", "processes": {"a": {"command": "x", "environment": ["C=3"]}}
    }));
    assert!(toml.contains("[project]\nname = \"shop\"\n"), "{toml}");
    assert!(toml.contains("[env]\nA = \"1\"\nB = \"x=y\"\n"), "{toml}");
    assert!(toml.contains("env.C = \"3\""), "{toml}");
    assert_eq!(reported, vec!["environment", "log_level"]);
}

#[test]
fn unknown_keys_are_reported_and_names_made_valid() {
    let (toml, reported) = render(json!({"processes": {
        "web server": {"command": "x", "frobnicate": 1, "depends_on": {"db:main": {"condition": "process_started"}}},
        "db:main": {"command": "y"}
    }}));
    assert!(toml.contains("[jobs.web-server]"), "{toml}");
    assert!(toml.contains("after = { db-main = \"started\" }"), "{toml}");
    assert_eq!(reported, vec!["frobnicate"]);
}

#[test]
fn not_a_process_compose_file() {
    for bad in [json!([]), json!({"version": "0.5"}), json!({"processes": {}}), json!({"processes": {"a": 1}})] {
        assert_eq!(translate(&bad, &cx()).unwrap_err().kind, crate::error::ErrorKind::BadInput, "{bad}");
    }
}
