//! Job lifecycle: readiness, dependencies, restart with backoff, limits, health checks, wait and
//! expect, with real processes and short settings.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn events(b: &Bgrun, job: &str) -> Vec<(String, String)> {
    b.status(job)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["detail"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_dependent_starts_only_after_its_dependency_logs_ready() {
    let b = Bgrun::new(SECS(60));
    let gate = b.home.join("gate");
    let db = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; printf 'listen'; sleep 0.1; echo 'ing on 5432'; sleep 30",
        gate.display()
    );
    b.json(&["run", "--name", "db", "--ready-when-regex", "^listening on \\d+$", &db]);
    let app = b.json(&["run", "--name", "app", "--after", "db", "sleep", "30"]);
    assert_eq!(app["state"], "starting");
    assert!(app["pid"].is_null());
    let st = b.status("app");
    assert_eq!(st["reason"], "waiting for db to be ready");
    assert_eq!(b.state("db"), "running");
    std::fs::write(&gate, "").unwrap();
    let out = b.json(&["wait", "app", "--timeout", "10s"]);
    assert_eq!(out["ready"], true);
    let db_ready = humantime::parse_rfc3339(b.status("db")["ready_at"].as_str().unwrap()).unwrap();
    let app_started = humantime::parse_rfc3339(b.status("app")["started_at"].as_str().unwrap()).unwrap();
    assert!(app_started >= db_ready - Duration::from_secs(1), "app started before db was ready");
    assert!(b.pid("app") > 0);
}

#[test]
fn after_a_missing_job_is_an_error() {
    let b = Bgrun::new(SECS(30));
    let err = b.fails(&["run", "--name", "app", "--after", "nope", "true"]);
    assert!(err.contains("nope"), "{err}");
    assert!(b.run_raw(&["list"]).stdout.is_empty());
}

#[test]
fn a_dependency_that_misses_its_condition_fails_the_dependent_at_once() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "db", "--ready-when", "never printed", "exit 2"]);
    wait_until("db to crash", SECS(10), || (b.state("db") == "crashed").then_some(()));
    // `db:ready` cannot be met any more: the dependent fails, and `wait` says so at once.
    b.json(&["run", "--name", "app", "--after", "db:ready", "sleep", "30"]);
    let out = b.run_raw(&["wait", "app", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "wait exits 1 when the job will not be ready");
    let waited: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(waited["ready"], false);
    assert_eq!(waited["state"], "crashed");
    assert!(waited["elapsed_ms"].as_u64().unwrap() < 10_000, "{waited}");
    assert_eq!(b.status("app")["reason"], "dependency db failed (exit 2)");
    assert!(b.status("app")["pid"].is_null());
    // A bare `--after db` waits for db to be ready or to have ended, however it ended.
    b.json(&["run", "--name", "report", "--after", "db", "echo", "db is done"]);
    let out = b.run_raw(&["wait", "report", "--timeout", "20s"]);
    let waited: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(waited["state"], "exited", "{waited}");
    assert_eq!(b.tail_text("report", 1), vec!["db is done"]);
}

#[test]
fn conditions_started_and_completed() {
    let b = Bgrun::new(SECS(30));
    let gate = b.home.join("gate");
    let migrate = format!("echo migrating; while [ ! -e {} ]; do sleep 0.01; done; echo migrated", gate.display());
    b.json(&["run", "--name", "migrate", "--oneshot", &migrate]);
    b.json(&["run", "--name", "tail", "--after", "migrate:started", "sleep", "30"]);
    b.json(&["run", "--name", "app", "--after", "migrate:completed", "sleep", "30"]);
    assert_eq!(b.state("tail"), "ready", "started: released once migrate has a process");
    assert_eq!(b.status("app")["reason"], "waiting for migrate to complete");
    // A one-shot is running, never ready, until it exits; then `wait` counts it as ready.
    assert_eq!(b.status("migrate")["reason"], "running until it completes");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(b.json(&["wait", "migrate", "--timeout", "10s"])["ready"], true);
    assert_eq!(b.json(&["wait", "app", "--timeout", "10s"])["ready"], true);
    let ended = |job: &str, kind: &str| -> String {
        let events = b.status(job)["events"].as_array().unwrap().clone();
        events.iter().rfind(|e| e["kind"] == kind).unwrap()["at"].as_str().unwrap().to_string()
    };
    assert!(ended("migrate", "exited") <= ended("app", "spawned"), "app started before migrate completed");
}

#[test]
fn a_crash_loop_backs_off_and_kill_ends_it_at_once() {
    let b = Bgrun::new(SECS(60));
    b.json(&["run", "--name", "loop", "--restart", "on-crash", "--backoff", "100ms", "echo attempt; exit 1"]);
    wait_until("three restarts", SECS(20), || (b.status("loop")["restart_count"].as_u64().unwrap() >= 3).then_some(()));
    // Delays grow: 100ms, 200ms, 400ms... (plus at most 10% jitter).
    let delays: Vec<Duration> = events(&b, "loop")
        .iter()
        .filter(|(k, _)| k == "restart-scheduled")
        .map(|(_, d)| humantime::parse_duration(d.rsplit("restarting in ").next().unwrap()).unwrap())
        .collect();
    assert!(delays.len() >= 3, "{delays:?}");
    for (i, pair) in delays.windows(2).enumerate() {
        assert!(pair[1] > pair[0], "delay {i} did not grow: {delays:?}");
    }
    assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(110), "{delays:?}");
    // Same id and the same log, appended.
    assert!(b.tail_text("loop", 100).iter().filter(|l| *l == "attempt").count() >= 3);
    let started = Instant::now();
    b.json(&["kill", "loop"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    let count = b.status("loop")["restart_count"].clone();
    let st = b.status("loop");
    assert!(st["reason"].as_str().unwrap().contains("restart cancelled"), "{st}");
    // Nothing brings it back: no restart is scheduled, and the job is desired stopped.
    let st = b.status("loop");
    assert_eq!(st["next_restart_at"], serde_json::Value::Null);
    assert_eq!(st["desired"], "stopped");
    assert_eq!(st["restart_count"], count);
    assert_eq!(st["state"], "crashed");
}

#[test]
fn a_job_over_its_memory_limit_is_killed_and_restarted() {
    let b = Bgrun::new(SECS(60));
    let hog =
        "python3 -c \"import time; b = bytearray(80 * 1024 * 1024); print('allocated', flush=True); time.sleep(60)\"";
    b.json(&["run", "--name", "hog", "--max-rss", "40", "--restart", "on-crash", "--backoff", "100ms", hog]);
    wait_until("an RSS restart", SECS(30), || (b.status("hog")["restart_count"].as_u64().unwrap() >= 1).then_some(()));
    let crashed = events(&b, "hog").into_iter().find(|(k, _)| k == "crashed").expect("a crash event");
    assert!(crashed.1.contains("--max-rss 40 MB"), "{crashed:?}");
    b.json(&["kill", "hog"]);
}

#[test]
fn max_runtime_ends_the_run_with_the_reason() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "short", "--max-runtime", "300ms", "sleep", "30"]);
    wait_until("ended", SECS(10), || (b.state("short") == "crashed").then_some(()));
    assert!(b.status("short")["reason"].as_str().unwrap().contains("--max-runtime 300ms"));
}

/// A job whose health check probes a port nobody listens on, every second, restarting on crash.
fn run_unhealthy(b: &Bgrun, threshold: &str) {
    let port = free_port().to_string();
    let args = ["--health-check-port", &port, "--health-interval", "1", "--health-threshold", threshold];
    let mut cmd = vec!["run", "--name", "sick"];
    cmd.extend(args);
    cmd.extend(["--restart", "on-crash", "--backoff", "100ms", "sleep", "60"]);
    b.json(&cmd);
}

#[test]
fn failing_health_checks_restart_the_job() {
    let b = Bgrun::new(SECS(60));
    run_unhealthy(&b, "3");
    let first = b.pid("sick");
    wait_until("a health restart", SECS(20), || {
        (b.status("sick")["restart_count"].as_u64().unwrap() >= 1).then_some(())
    });
    let crashed = events(&b, "sick").into_iter().find(|(k, _)| k == "crashed").expect("a crash event");
    assert!(crashed.1.contains("unhealthy (3 failed health checks"), "{crashed:?}");
    wait_until("running again", SECS(10), || (b.state("sick") == "ready").then_some(()));
    assert_ne!(b.pid("sick"), first);
    b.json(&["kill", "sick"]);
}

#[test]
fn readiness_by_port_url_and_file() {
    let b = Bgrun::new(SECS(60));
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    b.json(&[
        "run",
        "--name",
        "web",
        "--ready-when-port",
        &port,
        "--ready-when-url",
        &url,
        "python3",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        &port,
    ]);
    let w = b.json(&["wait", "web", "--timeout", "20s"]);
    assert_eq!(w["ready"], true, "{w}");
    let marker = b.home.join("made");
    b.json(&[
        "run",
        "--name",
        "maker",
        "--ready-when-file",
        marker.to_str().unwrap(),
        &format!("sleep 0.2; touch {}; sleep 30", marker.display()),
    ]);
    assert_eq!(b.json(&["wait", "maker", "--timeout", "10s"])["ready"], true);
    b.json(&["kill", "web"]);
    b.json(&["kill", "maker"]);
}

#[test]
fn a_readiness_timeout_leaves_the_job_running_with_the_reason() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "slow", "--ready-when", "never", "--ready-timeout", "300ms", "sleep", "30"]);
    let out = b.run_raw(&["wait", "slow", "--timeout", "10s"]);
    assert_eq!(out.status.code(), Some(1));
    // The contract's answer to a wait that ran out: no state, the job is still running.
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (w["ready"].as_bool(), w["state"].is_null(), w["exit_code"].is_null()),
        (Some(false), true, true),
        "{w}"
    );
    let st = b.status("slow");
    assert_eq!(st["state"], "running");
    assert!(st["reason"].as_str().unwrap().contains("not ready"), "{st}");
    assert!(alive(b.pid("slow")));
}

#[test]
fn wait_on_a_crashed_job_returns_at_once_with_1() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "bad", "exit 3"]);
    wait_until("crashed", SECS(10), || (b.state("bad") == "crashed").then_some(()));
    let started = Instant::now();
    let out = b.run_raw(&["wait", "bad", "--timeout", "30s"]);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(out.status.code(), Some(1));
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        w,
        serde_json::json!({"ready": false, "elapsed_ms": w["elapsed_ms"], "exit_code": 3, "state": "crashed"})
    );
    // And a timeout while still running:
    b.json(&["run", "--name", "never", "--ready-when", "x", "sleep", "30"]);
    let out = b.run_raw(&["wait", "never", "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(1));
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["state"], serde_json::Value::Null);
    assert!(w["elapsed_ms"].as_u64().unwrap() >= 200);
}

#[test]
fn expect_matches_past_and_future_output() {
    let b = Bgrun::new(SECS(30));
    let gate = b.home.join("gate");
    b.json(&[
        "run",
        "--name",
        "talk",
        &format!(
            "echo 'hello 1'; while [ ! -e {} ]; do sleep 0.01; done; echo 'served on http://localhost:8123'; sleep 30",
            gate.display()
        ),
    ]);
    let past = b.json(&["expect", "talk", "hello"]);
    assert_eq!(past, serde_json::json!({"matched": true, "line_number": 1, "content": "hello 1"}));
    let future = b
        .cmd(&["expect", "talk", "http://localhost:\\d+", "--regex", "--timeout", "10s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&gate, "").unwrap();
    let out = future.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["content"], "served on http://localhost:8123");
    let miss = b.run_raw(&["expect", "talk", "absent", "--timeout", "200ms"]);
    assert_eq!(miss.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&miss.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"matched": false, "line_number": null, "content": null}));
    b.json(&["kill", "talk"]);
}

#[test]
fn restart_always_brings_back_a_clean_exit_and_keeps_the_id() {
    let b = Bgrun::new(SECS(30));
    let first = b.json(&["run", "--name", "again", "--restart", "always", "--backoff", "50ms", "echo run; exit 0"]);
    wait_until("two restarts", SECS(10), || (b.status("again")["restart_count"].as_u64().unwrap() >= 2).then_some(()));
    assert_eq!(b.status("again")["id"], first["id"]);
    b.json(&["kill", "again"]);
}

#[test]
fn allocated_ports_reach_the_job_and_status_shows_what_it_listens_on() {
    let b = Bgrun::new(SECS(60));
    let serve = "exec python3 -u -m http.server --bind 127.0.0.1 \"$PORT\"";
    b.json(&["run", "--name", "one", "--allocate-port", "PORT", "--ready-when", "Serving HTTP", serve]);
    b.json(&["run", "--name", "two", "--allocate-port", "PORT", "--ready-when", "Serving HTTP", serve]);
    for job in ["one", "two"] {
        assert_eq!(b.json(&["wait", job, "--timeout", "20s"])["ready"], true);
    }
    let one = b.status("one");
    let two = b.status("two");
    let p1 = one["allocated_ports"]["PORT"].as_u64().unwrap();
    let p2 = two["allocated_ports"]["PORT"].as_u64().unwrap();
    assert_ne!(p1, p2, "two jobs were given the same port");
    assert_eq!(one["ports"], serde_json::json!([p1]));
    assert_eq!(two["ports"], serde_json::json!([p2]));
    // list shows them too.
    let out = b.run_raw(&["list"]);
    let listed: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed[0]["ports"], serde_json::json!([p1]));
    std::net::TcpStream::connect(("127.0.0.1", p1 as u16)).expect("the job serves on its allocated port");
    b.json(&["kill", "--workspace", "none"]);
    b.json(&["kill", "one"]);
    b.json(&["kill", "two"]);
}

#[test]
fn systemd_notify_readiness() {
    let b = Bgrun::new(SECS(30));
    let script = "python3 -c \"import os, socket, time\nsock = os.environ['NOTIFY_SOCKET']\naddr = '\\0' + sock[1:] if sock.startswith('@') else sock\ntime.sleep(0.2)\nsocket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'STATUS=warming\\nREADY=1', addr)\ntime.sleep(30)\"";
    b.json(&["run", "--name", "svc", "--ready-when-notify", script]);
    assert_eq!(b.state("svc"), "running");
    let w = b.json(&["wait", "svc", "--timeout", "10s"]);
    assert_eq!(w["ready"], true, "{w}");
    b.json(&["kill", "svc"]);
}

#[test]
fn a_crash_loop_gives_up_after_its_burst_limit() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "doomed", "--restart", "on-crash", "--backoff", "0ms", "exit 1"]);
    wait_until("gave up", SECS(20), || {
        b.status("doomed")["reason"].as_str().unwrap().contains("not restarting after 11 crashes").then_some(())
    });
    // The default max-restarts: 10 restarts, then the 11th crash is the last.
    let st = b.status("doomed");
    assert_eq!(st["state"], "crashed");
    assert_eq!(st["restart_count"], 10);
    assert_eq!(st["next_restart_at"], serde_json::Value::Null);
    // An explicit run starts it again.
    b.json(&["run", "--name", "doomed", "--restart", "on-crash", "--backoff", "0ms", "exit 1"]);
    wait_until("restarting again", SECS(20), || {
        (b.status("doomed")["restart_count"].as_u64().unwrap() > 10).then_some(())
    });
    b.json(&["kill", "doomed"]);
}

#[test]
fn health_checks_resume_after_a_daemon_restart() {
    let b = Bgrun::new(SECS(60));
    run_unhealthy(&b, "2");
    b.json(&["daemon", "stop"]);
    // The next command starts a new daemon, which re-adopts the job and probes it again.
    let first = b.pid("sick");
    wait_until("a health restart", SECS(20), || {
        (b.status("sick")["restart_count"].as_u64().unwrap() >= 1).then_some(())
    });
    assert!(!alive(first));
    b.json(&["kill", "sick"]);
}

/// Writes a shell script into the test's home and returns its path.
fn script(b: &Bgrun, name: &str, body: &str) -> String {
    let path = b.home.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// Stands in for postgres, whose SIGTERM is a "smart" shutdown that waits for every client:
/// it ignores SIGTERM and shuts down at once on SIGINT.
const POSTGRES_LIKE: &str =
    "trap '' TERM; trap 'echo fast shutdown; exit 0' INT; echo ready; while :; do sleep 0.05; done\n";

#[test]
fn a_stop_signal_is_what_a_stop_sends() {
    let b = Bgrun::new(SECS(60));
    let db = script(&b, "db.sh", POSTGRES_LIKE);
    b.json(&["run", "--name", "db", "--stop-signal", "int", "--grace", "20s", "--ready-when", "ready", "sh", &db]);
    b.json(&["wait", "db", "--timeout", "10s"]);
    b.json(&["kill", "db"]);
    let st = b.status("db");
    assert_eq!(st["exit_code"], 0, "{st}");
    assert_eq!(st["reason"], "killed on request (exited with code 0)");
    assert!(b.tail_text("db", 5).contains(&"fast shutdown".to_string()));
    // Without it, SIGTERM is ignored and the grace ends in SIGKILL.
    b.json(&["run", "--name", "plain", "--grace", "500ms", "--ready-when", "ready", "sh", &db]);
    b.json(&["wait", "plain", "--timeout", "10s"]);
    b.json(&["kill", "plain"]);
    assert_eq!(b.status("plain")["reason"], "killed on request (killed by SIGKILL)");
}

/// A stop's grace travels with the daemon's SIGTERM to the job's supervisor (as its value), not
/// in a file: `kill --grace` overrides the spec's grace of the very run it stops.
#[test]
fn a_kill_with_a_grace_of_its_own_ends_a_job_that_ignores_sigterm_within_that_grace() {
    let b = Bgrun::new(SECS(60));
    let cmd = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
    b.json(&["run", "--name", "stubborn", "--grace", "40s", "--ready-when", "ready", "sh", "-c", cmd]);
    b.json(&["wait", "stubborn", "--timeout", "10s"]);
    let asked = Instant::now();
    b.json(&["kill", "stubborn", "--grace", "300ms"]);
    // Well under the spec's 40 s: the grace asked for is the one that ran out.
    assert!(asked.elapsed() < SECS(20), "took {:?}", asked.elapsed());
    assert_eq!(b.status("stubborn")["reason"], "killed on request (killed by SIGKILL)");
}

#[test]
fn a_stop_command_runs_in_the_jobs_directory_and_environment() {
    let b = Bgrun::new(SECS(60));
    let job = script(
        &b,
        "job.sh",
        "echo $$ > job.pid; trap 'echo stopped by command; exit 0' USR1; trap '' TERM; echo ready; while :; do sleep 0.05; done\n",
    );
    let stop = "echo \"$WHO\" > stopper.txt; kill -USR1 $(cat job.pid)";
    let home = b.home.display().to_string();
    let args = ["run", "--name", "j", "--cwd", &home, "--env", "WHO=the stop command", "--stop-command", stop];
    b.json(&[&args[..], &["--grace", "20s", "--ready-when", "ready", "sh", &job]].concat());
    b.json(&["wait", "j", "--timeout", "10s"]);
    b.json(&["kill", "j"]);
    assert_eq!(b.status("j")["exit_code"], 0);
    assert_eq!(std::fs::read_to_string(b.home.join("stopper.txt")).unwrap(), "the stop command\n");
    assert!(b.tail_text("j", 5).contains(&"stopped by command".to_string()));
}

/// A main process with a child in its group and one in a session of its own, each saying which
/// signal reached it.
const FAMILY: &str = "trap 'echo main got TERM; exit 0' TERM
sh -c 'trap \"echo child got TERM; exit 0\" TERM; while :; do sleep 0.05; done' &
setsid sh -c 'trap \"echo session child got TERM; exit 0\" TERM; while :; do sleep 0.05; done' &
echo ready; while :; do sleep 0.05; done
";

#[test]
fn kill_mode_group_reaches_every_process_and_main_only_the_main_one() {
    let b = Bgrun::new(SECS(60));
    let family = script(&b, "family.sh", FAMILY);
    for (name, mode) in [("group", "group"), ("main", "main")] {
        b.json(&["run", "--name", name, "--kill-mode", mode, "--grace", "1s", "--ready-when", "ready", "sh", &family]);
        b.json(&["wait", name, "--timeout", "10s"]);
        b.json(&["kill", name]);
    }
    let said = |job: &str| b.tail_text(job, 20);
    let group = said("group");
    for line in ["main got TERM", "child got TERM", "session child got TERM"] {
        assert!(group.contains(&line.to_string()), "group: {line:?} missing from {group:?}");
    }
    let main = said("main");
    assert!(main.contains(&"main got TERM".to_string()), "{main:?}");
    assert!(!main.iter().any(|l| l.contains("child got TERM")), "main mode signalled a child: {main:?}");
    assert_eq!(b.status("main")["reason"], "killed on request (exited with code 0)");
}

#[test]
fn a_port_readiness_check_never_connects_to_the_port() {
    let b = Bgrun::new(SECS(30));
    // The test holds the listening socket and never accepts: any connection a probe made would
    // wait in its queue. Connecting in a loop to a port nobody listens on yet can connect a
    // socket to itself and steal the port from the job that wants it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    b.json(&["run", "--name", "web", "--ready-when-port", &port, "sleep", "30"]);
    assert_eq!(b.json(&["wait", "web", "--timeout", "10s"])["ready"], true);
    let err = listener.accept().expect_err("the readiness check connected to the port");
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
}

#[test]
fn a_localhost_url_is_ready_whichever_address_the_server_listens_on() {
    let b = Bgrun::new(SECS(60));
    for (name, address) in [("v4", "127.0.0.1"), ("v6", "::1")] {
        let port = free_port().to_string();
        let url = format!("http://localhost:{port}/");
        let server = format!("exec python3 -m http.server --bind {address} {port}");
        b.json(&["run", "--name", name, "--ready-when-url", &url, "--ready-timeout", "15s", &server]);
        let waited = b.json(&["wait", name, "--timeout", "20s"]);
        assert_eq!(waited["ready"], true, "{name}: {waited}");
    }
}

#[test]
fn readiness_sees_a_prompt_without_a_newline() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "login", "--ready-when", "Password:", "printf 'Password: '; exec sleep 30"]);
    b.json(&["run", "--name", "repl", "--ready-when-regex", "^>>> $", "printf '>>> '; exec sleep 30"]);
    for job in ["login", "repl"] {
        let waited = b.json(&["wait", job, "--timeout", "10s"]);
        assert_eq!(waited["ready"], true, "{job}: {waited}");
    }
}

#[test]
fn tail_follow_follows_the_job_across_restarts() {
    let b = Bgrun::new(SECS(30));
    let counter = b.home.join("runs");
    // Crashes twice, then succeeds: three runs, one log.
    let cmd = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo run $n; [ $n -ge 3 ] || exit 1",
        c = counter.display()
    );
    let gate = b.home.join("gate");
    let gated = format!("while [ ! -e {} ]; do sleep 0.01; done; {cmd}", gate.display());
    b.json(&["run", "--name", "flaky", "--restart", "on-crash", "--backoff", "100ms", &gated]);
    let follow = b.cmd(&["tail", "flaky", "--follow"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::fs::write(&gate, "").unwrap();
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for n in 1..=3 {
        assert!(text.contains(&format!("run {n}")), "run {n} missing from the follow: {text}");
    }
    assert_eq!(b.state("flaky"), "exited");
}

#[test]
fn readiness_by_a_command() {
    let b = Bgrun::new(SECS(30));
    let home = b.home.display().to_string();
    // pg_isready's part is played by `test`: run in the job's cwd, ready once it exits 0.
    b.json(&["run", "--name", "db", "--cwd", &home, "--ready-when-exec", "test -e accepting", "sleep", "30"]);
    assert_eq!(b.state("db"), "running");
    std::fs::write(b.home.join("accepting"), "").unwrap();
    assert_eq!(b.json(&["wait", "db", "--timeout", "10s"])["ready"], true);
}

fn unhealthy_reason(b: &Bgrun, job: &str) -> String {
    wait_until("the job to be killed as unhealthy", SECS(20), || {
        events(b, job).into_iter().find(|(k, d)| k == "crashed" && d.contains("unhealthy")).map(|(_, d)| d)
    })
}

#[test]
fn health_commands_with_a_timeout_and_a_start_period() {
    let b = Bgrun::new(SECS(60));
    // A check that hangs fails at the health timeout.
    let hang = ["--health-check-exec", "sleep 10", "--health-timeout", "300ms", "--health-interval", "200ms"];
    b.json(&[&["run", "--name", "hangs"][..], &hang, &["--health-threshold", "1", "sleep", "30"]].concat());
    assert!(unhealthy_reason(&b, "hangs").contains("did not finish within 300ms"));
    // A booting server's failures do not count during its start period.
    let boot = ["--health-check-exec", "false", "--health-interval", "100ms", "--health-start-period", "1500ms"];
    b.json(&[&["run", "--name", "boots"][..], &boot, &["--health-threshold", "1", "sleep", "30"]].concat());
    unhealthy_reason(&b, "boots");
    let st = b.status("boots");
    let at = |kind: &str| {
        let event = st["events"].as_array().unwrap().iter().find(|e| e["kind"] == kind).unwrap().clone();
        humantime::parse_rfc3339(event["at"].as_str().unwrap()).unwrap()
    };
    let lived = at("crashed").duration_since(at("spawned")).unwrap_or_default();
    assert!(lived >= Duration::from_millis(1500), "killed {lived:?} after it started, inside its start period");
}

/// The pid a program wrote to `file` in the test's home, once it has.
fn pid_in(b: &Bgrun, file: &str) -> i32 {
    wait_until(file, SECS(10), || std::fs::read_to_string(b.home.join(file)).ok()?.trim().parse().ok())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// A program that forks into the background like init scripts do: its daemon writes a pidfile,
/// and the first process exits 0.
const FORKS_AWAY: &str = "setsid sh -c 'echo $$ > daemon.pid; exec sleep 60' > /dev/null 2>&1 &
sleep 0.2; exit 0
";

#[test]
fn a_daemonizing_program_is_followed_stopped_and_its_absence_noticed() {
    let b = Bgrun::new(SECS(60));
    let home = b.home.display().to_string();
    let script = script(&b, "forks.sh", FORKS_AWAY);
    b.json(&["run", "--name", "d", "--cwd", &home, "--daemonizes", "--pidfile", "daemon.pid", "sh", &script]);
    let daemon: i32 = pid_in(&b, "daemon.pid");
    wait_until("bgrun to follow the daemon", SECS(10), || (b.status("d")["pid"] == daemon).then_some(()));
    assert_eq!(b.state("d"), "ready");
    // A new bgrun daemon re-adopts the job as the daemonized process.
    b.json(&["daemon", "stop"]);
    let st = b.status("d");
    assert_eq!((st["state"].as_str(), st["pid"].as_i64()), (Some("ready"), Some(daemon as i64)), "{st}");
    b.json(&["kill", "d"]);
    assert!(!alive(daemon), "the daemonized process survived its job's stop");
    assert_eq!(b.state("d"), "killed");
    // Without `daemonizes`, the first process's exit ends the job and what it left is stopped.
    std::fs::remove_file(b.home.join("daemon.pid")).unwrap();
    b.json(&["run", "--name", "plain", "--cwd", &home, "sh", &script]);
    let left: i32 = pid_in(&b, "daemon.pid");
    wait_until("the job to end", SECS(10), || (b.state("plain") == "exited").then_some(()));
    assert!(!alive(left));
    // A followed daemon that dies ends its job, like any main process.
    std::fs::remove_file(b.home.join("daemon.pid")).unwrap();
    b.json(&["run", "--name", "d", "--cwd", &home, "--daemonizes", "--pidfile", "daemon.pid", "sh", &script]);
    let daemon: i32 = pid_in(&b, "daemon.pid");
    wait_until("bgrun to follow the new daemon", SECS(10), || (b.status("d")["pid"] == daemon).then_some(()));
    signal(daemon, libc::SIGTERM);
    wait_until("the job to crash", SECS(10), || (b.state("d") == "crashed").then_some(()));
    assert_eq!(b.status("d")["reason"], "killed by SIGTERM");
}

#[test]
fn redis_daemonized_is_supervised_like_any_job() {
    // The real program: `redis-server --daemonize yes` forks, writes its pidfile and exits 0.
    // .ci/run installs redis-server.
    let b = Bgrun::new(SECS(60));
    let home = b.home.display().to_string();
    let port = free_port().to_string();
    let redis = format!("redis-server --port {port} --daemonize yes --pidfile {home}/redis.pid --dir {home} --save ''");
    let args = ["--daemonizes", "--pidfile", "redis.pid", "--ready-when-port", &port, "--stop-signal", "SIGTERM"];
    b.json(&[&["run", "--name", "redis", "--cwd", &home][..], &args, &[redis.as_str()]].concat());
    assert_eq!(b.json(&["wait", "redis", "--timeout", "20s"])["ready"], true);
    let pid: i32 = std::fs::read_to_string(b.home.join("redis.pid")).unwrap().trim().parse().unwrap();
    wait_until("bgrun to follow redis", SECS(10), || (b.status("redis")["pid"] == pid).then_some(()));
    assert!(alive(pid));
    b.json(&["kill", "redis"]);
    assert!(!alive(pid), "redis survived its job's stop");
    let st = b.status("redis");
    assert_eq!(st["state"], "killed", "{st}");
    assert!(!st["reason"].as_str().unwrap().contains("SIGKILL"), "redis needed SIGKILL: {st}");
}

/// The classic double fork, without a pidfile: the first process starts an intermediate one,
/// which starts the daemon in a session of its own and exits.
const FORKS_TWICE: &str = "( setsid sh -c 'echo $$ > daemon.pid; exec sleep 60' > /dev/null 2>&1 & sleep 0.3 ) &
exit 0
";

#[test]
fn a_program_that_forks_twice_is_followed_to_its_daemon() {
    let b = Bgrun::new(SECS(60));
    let home = b.home.display().to_string();
    let script = script(&b, "twice.sh", FORKS_TWICE);
    b.json(&["run", "--name", "d", "--cwd", &home, "--daemonizes", "sh", &script]);
    let daemon: i32 = pid_in(&b, "daemon.pid");
    wait_until("bgrun to follow the daemon", SECS(10), || (b.status("d")["pid"] == daemon).then_some(()));
    assert!(alive(daemon), "the daemon was stopped when the intermediate process exited");
    assert_eq!(b.state("d"), "ready");
    b.json(&["kill", "d"]);
    assert!(!alive(daemon));
}

#[test]
fn restart_knobs_max_restarts_constant_delay_and_stop_exit_codes() {
    let b = Bgrun::new(SECS(60));
    // Two restarts, each after the same 100 ms, then the third crash is the last.
    let knobs = ["--restart", "on-crash", "--max-restarts", "2", "--restart-delay", "100ms"];
    b.json(&[&["run", "--name", "flaky"][..], &knobs, &["exit 1"]].concat());
    wait_until("the job to give up", SECS(20), || {
        b.status("flaky")["reason"].as_str()?.contains("not restarting").then_some(())
    });
    assert_eq!(b.status("flaky")["restart_count"], 2);
    let delays: Vec<String> =
        events(&b, "flaky").into_iter().filter(|(k, _)| k == "restart-scheduled").map(|(_, d)| d).collect();
    assert_eq!(delays.len(), 2, "{delays:?}");
    assert!(delays.iter().all(|d| d.ends_with("restarting in 100ms")), "{delays:?}");
    // An exit code the program uses to say "stop": a clean end, never restarted, even by `always`.
    b.json(&["run", "--name", "done", "--restart", "always", "--stop-exit-codes", "3", "exit 3"]);
    wait_until("the job to end", SECS(10), || (b.state("done") == "exited").then_some(()));
    let st = b.status("done");
    assert!(st["reason"].as_str().unwrap().contains("stop exit code"), "{st}");
    assert!(st["next_restart_at"].is_null(), "{st}");
}

#[test]
fn output_is_mirrored_to_the_files_the_user_names_byte_for_byte() {
    let b = Bgrun::new(SECS(30));
    let home = b.home.display().to_string();
    let prog = "printf 'out1\\nout\\3772'; printf 'err1\\n' >&2";
    let files = ["--stdout", "out.log", "--stderr", "err.log", "--log", "all.log"];
    b.json(&[&["run", "--name", "m", "--cwd", &home][..], &files, &[prog]].concat());
    wait_until("the job to end", SECS(10), || (b.state("m") == "exited").then_some(()));
    let read = |f: &str| std::fs::read(b.home.join(f)).unwrap();
    assert_eq!(read("out.log"), b"out1\nout\xff2");
    assert_eq!(read("err.log"), b"err1\n");
    let all = read("all.log");
    assert_eq!(all.len(), read("out.log").len() + read("err.log").len());
    // With timestamps, every line starts with the time it was written.
    b.json(&["run", "--name", "t", "--cwd", &home, "--log", "stamped.log", "--log-timestamps", "printf 'a\\nb\\n'"]);
    wait_until("the second job to end", SECS(10), || (b.state("t") == "exited").then_some(()));
    let stamped = String::from_utf8(read("stamped.log")).unwrap();
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 2, "{stamped}");
    for (line, text) in lines.iter().zip(["a", "b"]) {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok() && rest == text, "{line}");
    }
}
