//! Start-first replace (`update = "start-first"`, the default behind `listen`): the new run
//! starts beside the old one, which serves until the new one is ready and then drains; a new run
//! that exits or is not ready in time is stopped and the old one goes on. Driven through `up`
//! against a real socket-activated server (a few lines of Python taking fd 3, as gunicorn or
//! uvicorn --fd would) under load from several clients on loopback.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

/// Answers each request with its VERSION once it says "serving" (after STARTUP seconds: a slow
/// boot); drains on SIGTERM and says "bye". VERSION=crash exits 3 at once; VERSION=never never
/// gets ready, and never accepts either.
const SERVER: &str = r#"
import os, select, signal, socket, sys, time
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
v = os.environ["VERSION"]
if v == "crash":
    sys.exit(3)
if v == "never":
    time.sleep(1000)
time.sleep(float(os.environ.get("STARTUP", "0")))
s = socket.socket(fileno=3)
print("serving", v, os.getpid(), flush=True)
while not stopping:
    if select.select([s], [], [], 0.05)[0]:
        c, _ = s.accept()
        c.recv(1024)
        c.sendall(("HTTP/1.0 200 OK\r\n\r\n" + v).encode())
        c.close()
print("bye", v, flush=True)
"#;

/// The project: one server behind `listen`, ready when it says so.
fn write_project(dir: &Path, port: u16, env: &str, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("server.py"), SERVER).unwrap();
    let toml = format!(
        "[jobs.web]\ncmd = \"python3 -u server.py\"\nlisten = \"127.0.0.1:{port}\"\nready-when = \"serving\"\n\
         env = {{ {env} }}\n{extra}"
    );
    std::fs::write(dir.join("bgrun.toml"), toml).unwrap();
}

fn up(b: &Bgrun, dir: &Path) -> (bool, Value) {
    let out = b.cmd(&["up"]).current_dir(dir).output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), report)
}

fn events(b: &Bgrun) -> Vec<(String, String)> {
    let status = b.status("web");
    let events = status["events"].as_array().unwrap().iter();
    events.map(|e| (e["kind"].as_str().unwrap().to_string(), e["detail"].as_str().unwrap().to_string())).collect()
}

/// `up` in the background, once the new run has started beside the old one.
fn up_until_replacing(b: &Bgrun, dir: &Path) -> std::thread::JoinHandle<std::io::Result<std::process::Output>> {
    let (home, dir) = (b.home.clone(), dir.to_path_buf());
    let upping = std::thread::spawn(move || {
        std::process::Command::new(BIN).arg("up").env("BGRUN_HOME", home).current_dir(dir).output()
    });
    wait_until("the new run beside the old one", SECS(10), || {
        b.status("web")["reason"].as_str().unwrap().contains("replacing: new run pid").then_some(())
    });
    upping
}

/// Brings v1 up and puts it under load from four clients.
fn serving_v1(b: &Bgrun, dir: &Path, port: u16) -> (i32, Load) {
    write_project(dir, port, "VERSION = \"v1\"", "");
    assert!(up(b, dir).0);
    assert_eq!(b.state("web"), "ready");
    (b.pid("web"), Load::start(port, 4))
}

#[test]
fn the_new_version_takes_over_once_ready_and_no_request_fails() {
    let b = Bgrun::new(SECS(60));
    let (dir, port) = (b.home.join("app"), free_port());
    let (old, load) = serving_v1(&b, &dir, port);
    // v2 takes a second and a half to boot: the old run serves meanwhile.
    write_project(&dir, port, "VERSION = \"v2\", STARTUP = \"1.5\"", "");
    let upping = up_until_replacing(&b, &dir);
    assert_eq!(b.pid("web"), old, "the old run is the job's until the new one is ready");
    assert_eq!(request(port).unwrap(), "v1");
    let out = upping.join().unwrap().unwrap();
    assert!(out.status.success(), "up failed: {}", String::from_utf8_lossy(&out.stdout));
    // up answers once the old version serves no more.
    assert!(!alive(old), "the old run is still alive when up returns");
    let before = load.take_answers();
    assert!(before.contains_key("v1"), "{before:?}");
    let new = b.pid("web");
    assert_ne!(new, old);
    for _ in 0..20 {
        assert_eq!(request(port).unwrap(), "v2");
    }
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    let kinds: Vec<String> = events(&b).into_iter().map(|(k, _)| k).collect();
    for kind in ["replacing", "spawned", "replaced", "retired"] {
        assert!(kinds.contains(&kind.to_string()), "no {kind} event: {kinds:?}");
    }
    // Both runs' output is in the job's log, each line whole.
    let log = b.tail_text("web", 10);
    assert!(log.contains(&"bye v1".to_string()), "{log:?}");
    assert!(log.contains(&format!("serving v2 {new}")), "{log:?}");
}

#[test]
fn a_new_version_that_never_gets_ready_is_stopped_and_the_old_one_serves_throughout() {
    let b = Bgrun::new(SECS(60));
    let (dir, port) = (b.home.join("app"), free_port());
    let (old, load) = serving_v1(&b, &dir, port);
    write_project(&dir, port, "VERSION = \"never\"", "ready-timeout = \"3s\"\n");
    let (ok, report) = up(&b, &dir);
    assert!(!ok, "{report}");
    let reason = report["jobs"][0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("the new run was not ready within 3s and was stopped"), "{reason}");
    assert!(reason.contains(&format!("the old run (pid {old}) goes on")), "{reason}");
    assert_eq!((b.pid("web"), b.state("web")), (old, "ready".to_string()));
    // The new run is gone.
    let (_, spawned) = events(&b).into_iter().rev().find(|(k, d)| k == "spawned" && d.contains("new run")).unwrap();
    let pid: i32 = spawned.split_whitespace().nth(4).unwrap().parse().unwrap();
    wait_until("the new run to be stopped", SECS(10), || (!alive(pid)).then_some(()));
    assert_eq!(request(port).unwrap(), "v1");
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", answered + failed);
    // The same spec is not tried again; the status says why the old run still serves.
    let (_, again) = up(&b, &dir);
    assert_eq!(again["jobs"][0]["action"], "unchanged", "{again}");
    assert_eq!(b.pid("web"), old);
    let status = b.status("web")["reason"].as_str().unwrap().to_string();
    assert!(status.contains("not replaced: the new run was not ready"), "{status}");
}

#[test]
fn a_new_version_that_exits_at_once_is_reported_and_the_old_one_goes_on() {
    let b = Bgrun::new(SECS(60));
    let (dir, port) = (b.home.join("app"), free_port());
    let (old, load) = serving_v1(&b, &dir, port);
    write_project(&dir, port, "VERSION = \"crash\"", "");
    let (ok, report) = up(&b, &dir);
    assert!(!ok, "{report}");
    let reason = report["jobs"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("the new run exited before it was ready (exited with code 3)"), "{reason}");
    assert_eq!(b.pid("web"), old);
    let answers = load.take_answers();
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", answered + failed);
    assert_eq!(answers.keys().collect::<Vec<_>>(), ["v1"], "{answers:?}");
}

#[test]
fn what_one_supervisor_cannot_run_twice_is_replaced_stop_first() {
    let b = Bgrun::new(SECS(60));
    let (dir, port) = (b.home.join("app"), free_port());
    let (old, load) = serving_v1(&b, &dir, port);
    // The shim rotates the job's log itself: a new rotation needs a new shim.
    write_project(&dir, port, "VERSION = \"v2\"", "log-max-size = 5\n");
    let (ok, report) = up(&b, &dir);
    assert!(ok, "{report}");
    assert_ne!(b.pid("web"), old);
    let (_, detail) = events(&b).into_iter().find(|(k, d)| k == "replacing" && d.contains("not possible")).unwrap();
    assert_eq!(detail, "start-first is not possible (its log settings changed): replacing stop-first");
    // Behind listen a stop-first replace refuses no connection either: they wait in the queue.
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", answered + failed);
    // What a supervisor can never run twice is refused when asked for.
    let err = b.fails(&["run", "--update", "start-first", "--pty", "sleep 30"]);
    assert!(err.contains("update = start-first: a job in a terminal cannot run twice at once"), "{err}");
    let address = format!("127.0.0.1:{}", free_port());
    let args = ["run", "--update", "start-first", "--listen", &address, "--ready-when-port", "1", "sleep 30"];
    let err = b.fails(&args);
    assert!(err.contains("a url, port or file check is answered by the old run"), "{err}");
}

#[test]
fn a_daemon_killed_while_the_new_run_starts_takes_up_the_replace_again() {
    let b = Bgrun::new(SECS(60));
    let (dir, port) = (b.home.join("app"), free_port());
    let (old, load) = serving_v1(&b, &dir, port);
    write_project(&dir, port, "VERSION = \"v2\", STARTUP = \"2\"", "");
    let upping = up_until_replacing(&b, &dir);
    kill_daemon(&b);
    let _ = upping.join();
    // The next daemon asks the job's supervisor for a new run again, of a newer spec meanwhile
    // (its attempt numbers start over, yet it is not taken for the earlier daemon's request):
    // the one still starting is replaced, and the new one takes over.
    write_project(&dir, port, "VERSION = \"v3\"", "");
    let (ok, report) = up(&b, &dir);
    assert!(ok, "{report}");
    assert!(!alive(old));
    assert_eq!(request(port).unwrap(), "v3");
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", answered + failed);
    // One server is left: the job's, and no run of v2 that an earlier daemon asked for.
    let servers: Vec<i32> = descendants(b.pid("web")).into_iter().filter(|p| alive(*p)).collect();
    assert!(servers.is_empty(), "{servers:?}");
    let shim = shims_of(&b.home)[0];
    let children: Vec<i32> = descendants(shim).into_iter().filter(|p| alive(*p)).collect();
    assert_eq!(children, [b.pid("web")]);
}
