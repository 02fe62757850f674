//! The wire format is frozen by golden files: each message below must serialize to exactly the
//! bytes in `tests/golden/v<VERSION>/<name>.json` and parse back to itself. Messages are only ever
//! appended; changing an existing golden file means a new protocol version, whose files go in a
//! new directory (the old versions' stay as the record of what they were). `BGRUN_BLESS=1` writes
//! missing files (never rewrites existing ones).

use bgrun::logs::Stream;
use bgrun::protocol::*;
use bgrun::spec::{Condition, Dependency, JobSpec, KillMode, Mirror, Readiness, RestartPolicy, Restarts, Stopping};
use std::path::PathBuf;
use std::time::Duration;

fn spec() -> JobSpec {
    JobSpec {
        name: Some("web".into()),
        workspace: Some("shop".into()),
        cmd: vec!["npm run dev".into()],
        cwd: "/srv/shop".into(),
        env: [("PORT".to_string(), "3000".to_string())].into(),
        ready: Readiness {
            log_contains: vec!["listening".into()],
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
        after: vec![Dependency::new("db", Condition::Ready), Dependency::new("migrate", Condition::Completed)],
        oneshot: false,
        daemonizes: false,
        pidfile: None,
        stop: Stopping { signal: Some("SIGINT".into()), command: None, kill_mode: KillMode::Group },
        pty: None,
        restart: RestartPolicy::OnCrash,
        backoff: Duration::from_secs(2),
        restarts: Restarts { stop_exit_codes: vec![64], ..Restarts::default() },
        disabled: false,
        mirror: Mirror { log: Some("logs/web.log".into()), timestamps: true, ..Mirror::default() },
        log_limits: Default::default(),
        max_rss_mb: Some(512),
        max_runtime: None,
        allocate_ports: vec![],
        health: None,
        grace: Duration::from_secs(5),
        project: Some("shop".into()),
        declared_env: [("PORT".to_string(), "3000".to_string())].into(),
        watch: vec!["src/**".into()],
        watch_ignore: vec![],
        restart_with_dependencies: false,
        request_id: None,
        env_sources: Default::default(),
        listen: vec![],
        replica: None,
        cron: None,
        container: None,
        fetch: false,
        update: None,
        force: false,
    }
}

fn job_view() -> JobView {
    JobView {
        id: "0e1b31c3-4b6a-41a3-b868-f6fa5087d504".into(),
        name: Some("web".into()),
        project: Some("shop".into()),
        workspace: None,
        cmd: vec!["cargo".into(), "run".into()],
        pid: Some(12345),
        state: "running".into(),
        started_at: Some("2026-05-31T00:00:00Z".into()),
        exit_code: None,
        restart_count: 0,
        reason: "running".into(),
        cwd: "/srv".into(),
        ports: vec![8080],
    }
}

fn up_job() -> UpJob {
    UpJob {
        job: "web".into(),
        id: "0e1b31c3-4b6a-41a3-b868-f6fa5087d504".into(),
        action: "create".into(),
        fields: vec![],
        state: "ready".into(),
        reason: "ready".into(),
        pid: Some(4242),
        ok: true,
        elapsed_ms: 19,
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    vec![
        ("request-attach-input", Request::AttachInput { data: vec![0x03, 0xff, 0xe2, 0x82] }),
        ("request-run", Request::Run { spec: Box::new(spec()) }),
        (
            "request-run-retried",
            Request::Run {
                spec: Box::new(JobSpec { request_id: Some("5f0c7a52-98d1-4c1e-9d1e-2b7f00c0ffee".into()), ..spec() }),
            },
        ),
        ("request-list", Request::List { workspace: Some("shop".into()) }),
        ("request-status", Request::Status { job: "web".into() }),
        ("request-env", Request::Env { job: "web".into() }),
        (
            "request-tail",
            Request::Tail(TailRequest {
                job: "web".into(),
                lines: 20,
                filter: LineFilter {
                    stream: Some(Stream::Stderr),
                    strip_ansi: true,
                    regex: Some("^GET".into()),
                    level: Some(Level::Warn),
                    since_ms: Some(1_795_000_000_000),
                },
                digest: false,
                follow: true,
            }),
        ),
        (
            "request-diff",
            Request::Diff(DiffRequest { job: "web".into(), lines: Some(5), filter: LineFilter::default() }),
        ),
        ("request-kill-job", Request::Kill { target: KillTarget::Job("web".into()), grace_ms: Some(1000) }),
        ("request-kill-workspace", Request::Kill { target: KillTarget::Workspace("shop".into()), grace_ms: None }),
        ("request-clean", Request::Clean { workspace: None }),
        ("request-delete", Request::Delete { job: Some("web".into()) }),
        ("request-nuke", Request::Delete { job: None }),
        ("request-wait", Request::Wait { job: "web".into(), timeout_ms: 60_000 }),
        (
            "request-expect",
            Request::Expect { job: "web".into(), pattern: "listening".into(), regex: false, timeout_ms: 1000 },
        ),
        (
            "request-up",
            Request::Up(UpRequest {
                project: "shop".into(),
                file: "/srv/shop/bgrun.toml".into(),
                jobs: vec![spec()],
                only: vec!["web".into()],
                wait: WaitFor::Ready,
                revive: true,
                progress: false,
                renew: vec![],
            }),
        ),
        ("request-plan", Request::Plan { project: "shop".into(), jobs: vec![spec()], only: vec![] }),
        ("request-down", Request::Down { project: "shop".into(), only: vec!["web".into()] }),
        ("request-daemon-status", Request::DaemonStatus),
        ("request-daemon-stop", Request::DaemonStop),
        ("request-watch", Request::Watch { workspace: Some("shop".into()) }),
        ("request-stats-all", Request::StatsAll),
    ]
}

fn responses() -> Vec<(&'static str, Response)> {
    let line = LineView {
        line_number: 42,
        content: "listening on :8080".into(),
        timestamp: Some("2026-05-31T00:00:00.000Z".into()),
        stream: Stream::Stdout,
    };
    vec![
        ("response-job", Response::Job(job_view())),
        ("response-jobs", Response::Jobs { jobs: vec![job_view()] }),
        ("response-lines", Response::Lines { lines: vec![line.clone()], more: false }),
        ("response-diff", Response::Diff { cursor: 2048, lines: vec![line.clone()], more: false }),
        ("response-lines-more", Response::Lines { lines: vec![line.clone()], more: true }),
        ("response-killed", Response::Killed { killed: vec!["abc123".into()] }),
        ("response-removed", Response::Removed { removed: vec!["abc123".into(), "def456".into()] }),
        ("response-end", Response::End { state: "exited".into() }),
        (
            "response-error",
            Response::Error {
                message: "no job named \"x\"".into(),
                hint: Some("bgrun list".into()),
                kind: bgrun::error::ErrorKind::NotFound,
            },
        ),
        (
            "response-daemon",
            Response::Daemon(DaemonInfo {
                pid: 4242,
                version: "0.1.0".into(),
                protocol: VERSION,
                uptime_secs: 60,
                socket: "/home/u/.bgrun/daemon.sock".into(),
                home: "/home/u/.bgrun".into(),
                jobs: 3,
                passes: 1200,
                problems: vec!["the state database cannot be written (database or disk is full)".into()],
            }),
        ),
        ("response-ok", Response::Ok),
        (
            "response-all-stats",
            Response::AllStats {
                stats: [(
                    "abc123".to_string(),
                    StatsView {
                        cpu_pct: 2.5,
                        rss_mb: 48,
                        uptime_secs: 3600,
                        processes: 3,
                        health: Some(HealthView { healthy: true, passed: true, failures: 0, latency_ms: 1.3 }),
                    },
                )]
                .into(),
            },
        ),
        // A terminal's bytes, whatever they are: base64 on the wire, never a lossy string.
        ("response-output", Response::Output { data: vec![b'o', b'k', 0xff, 0xc3] }),
        (
            "response-wait",
            Response::Wait(WaitView {
                ready: false,
                elapsed_ms: 150,
                exit_code: Some(1),
                state: Some("crashed".into()),
            }),
        ),
        (
            "response-expect",
            Response::Expect(ExpectView { matched: true, line_number: Some(42), content: Some("listening".into()) }),
        ),
        (
            "response-up",
            Response::Up(UpView { project: "shop".into(), ok: true, elapsed_ms: 27, jobs: vec![up_job()] }),
        ),
        ("response-progress", Response::Progress(up_job())),
        (
            "response-plan",
            Response::Plan {
                project: "shop".into(),
                changes: vec![bgrun::protocol::Change {
                    job: "web".into(),
                    action: "replace".into(),
                    fields: vec!["cmd".into()],
                }],
            },
        ),
        ("response-down", Response::Down { stopped: vec!["abc123".into()] }),
        (
            "response-env",
            Response::Env(EnvView {
                id: "abc123".into(),
                name: Some("web".into()),
                vars: vec![EnvVar { name: "PORT".into(), value: "3000".into(), source: "[jobs.web.env]".into() }],
            }),
        ),
    ]
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{VERSION}/{name}.json"))
}

fn check<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, frame: T) {
    let json = serde_json::to_string_pretty(&frame).unwrap() + "\n";
    let path = golden(name);
    if !path.exists() && std::env::var_os("BGRUN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &json).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
    assert_eq!(json, want, "{name} no longer serializes as its golden file");
    let back: T = serde_json::from_str(&want).unwrap();
    assert_eq!(back, frame, "{name} does not parse back");
}

#[test]
fn requests_match_their_golden_files() {
    for (name, request) in requests() {
        check(name, RequestFrame { v: VERSION, request });
    }
}

#[test]
fn responses_match_their_golden_files() {
    for (name, response) in responses() {
        check(name, ResponseFrame { v: VERSION, response });
    }
}

#[test]
fn frames_are_length_prefixed() {
    let mut buf = Vec::new();
    write_frame(&mut buf, br#"{"v":1}"#).unwrap();
    assert_eq!(buf, b"\x00\x00\x00\x07{\"v\":1}");
    let mut r = &buf[..];
    assert_eq!(read_frame(&mut r).unwrap().unwrap(), br#"{"v":1}"#);
    assert!(read_frame(&mut r).unwrap().is_none());
    let huge = (MAX_FRAME as u32 + 1).to_be_bytes();
    assert!(read_frame(&mut &huge[..]).is_err());
}
