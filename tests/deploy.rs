//! `bgrun deploy` against real git repositories made in a temporary directory: a bare "remote",
//! the deployed checkout, and a developer's clone that pushes new versions. (The tests use the
//! `git` command to make them; bgrun itself uses libgit2.)

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git (installed by .ci/run)");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A remote, the server's checkout (`work`) and a developer's clone (`dev`).
struct Repos {
    work: PathBuf,
    dev: PathBuf,
}

impl Repos {
    fn new(b: &Bgrun, files: &[(&str, &str)]) -> Repos {
        let root = b.home.join("git");
        std::fs::create_dir_all(&root).unwrap();
        git(&root, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        git(&root, &["clone", "-q", "remote.git", "dev"]);
        let dev = root.join("dev");
        git(&dev, &["checkout", "-q", "-b", "main"]);
        let repos = Repos { work: root.join("work"), dev };
        repos.push("v1", files);
        git(&root, &["clone", "-q", "remote.git", "work"]);
        repos
    }

    /// A new version pushed to the remote.
    fn push(&self, message: &str, files: &[(&str, &str)]) {
        for (name, text) in files {
            std::fs::write(self.dev.join(name), text).unwrap();
        }
        git(&self.dev, &["add", "."]);
        git(&self.dev, &["commit", "-q", "-m", message]);
        git(&self.dev, &["push", "-q", "origin", "main"]);
    }

    fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn deploy(b: &Bgrun, dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = b.cmd(&[&["deploy"][..], args].concat()).current_dir(dir).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn up(b: &Bgrun, dir: &Path) {
    let out = b.cmd(&["up"]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn two_jobs(api: &str) -> String {
    format!("[jobs.api]\ncmd = \"echo {api}; exec sleep 60\"\n[jobs.db]\ncmd = \"exec sleep 61\"\n")
}

#[test]
fn a_fast_forward_deploy_replaces_only_what_changed_and_is_recorded() {
    let b = Bgrun::new(SECS(60));
    let r = Repos::new(&b, &[("bgrun.toml", &two_jobs("api v1"))]);
    up(&b, &r.work);
    let (api, db) = (b.pid("api"), b.pid("db"));
    let old = r.head();
    r.push("v2", &[("bgrun.toml", &two_jobs("api v2"))]);

    // A dry run fetches and tells, and moves nothing.
    let (code, plan, _) = deploy(&b, &r.work, &["--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!((plan["moves"].clone(), plan["old"].as_str()), (Value::Bool(true), Some(old.as_str())));
    let actions: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["job"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("api", "replace")) && actions.contains(&("db", "unchanged")), "{actions:?}");
    assert_eq!(r.head(), old);
    assert_eq!(b.pid("api"), api);

    let (code, done, err) = deploy(&b, &r.work, &[]);
    assert_eq!(code, 0, "{err}");
    let new = r.head();
    assert_ne!(new, old);
    assert_eq!((done["old"].as_str(), done["new"].as_str()), (Some(old.as_str()), Some(new.as_str())));
    assert_eq!(done["ok"], true);
    assert_ne!(b.pid("api"), api, "api changed: replaced");
    assert_eq!(b.pid("db"), db, "db did not: untouched");
    assert_eq!(b.tail_text("api", 1), ["api v2"]);

    // Nothing new: nothing moves, nothing restarts.
    let (code, again, _) = deploy(&b, &r.work, &[]);
    assert_eq!((code, again["old"].clone()), (0, again["new"].clone()));
    let history: Vec<Value> =
        String::from_utf8(b.cmd(&["deploy", "--history"]).current_dir(&r.work).output().unwrap().stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["new"].as_str(), Some(new.as_str()), "newest first");
    let events = b.status("api")["events"].to_string();
    assert!(events.contains(&format!("{} → {}", &old[..12], &new[..12])), "{events}");
}

/// Each refusal: exit 4, one line, the checkout and the jobs as they were.
fn refused(b: &Bgrun, dir: &Path, args: &[&str], expected: &str) {
    let head = git(dir, &["rev-parse", "HEAD"]);
    let pid = b.pid("api");
    let (code, _, err) = deploy(b, dir, args);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(expected), "{expected:?} not in {err}");
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(b.pid("api"), pid);
}

#[test]
fn every_refusal_changes_nothing() {
    let b = Bgrun::new(SECS(60));
    let r = Repos::new(&b, &[("bgrun.toml", &two_jobs("api v1")), ("notes.txt", "one\n")]);
    up(&b, &r.work);
    r.push("v2", &[("bgrun.toml", &two_jobs("api v2"))]);

    std::fs::write(r.work.join("notes.txt"), "edited\n").unwrap();
    refused(&b, &r.work, &[], "tracked files are modified: notes.txt");
    git(&r.work, &["checkout", "-q", "notes.txt"]);

    git(&r.work, &["commit", "-q", "--allow-empty", "-m", "a local change"]);
    refused(&b, &r.work, &[], "has diverged from origin/main");
    git(&r.work, &["reset", "-q", "--hard", "HEAD~1"]);

    git(&r.work, &["checkout", "-q", "--detach"]);
    refused(&b, &r.work, &[], "HEAD is detached");
    git(&r.work, &["checkout", "-q", "main"]);

    git(&r.work, &["checkout", "-q", "-b", "local"]);
    refused(&b, &r.work, &[], "branch local has no upstream");
    git(&r.work, &["checkout", "-q", "main"]);

    git(&r.work, &["remote", "set-url", "origin", "/nonexistent/remote.git"]);
    refused(&b, &r.work, &[], "cannot fetch from origin");
}

#[test]
fn a_version_that_never_becomes_ready_is_rolled_back() {
    let b = Bgrun::new(SECS(60));
    let ready = |api: &str| {
        format!("[jobs.api]\ncmd = \"echo {api}; exec sleep 60\"\nready-when = \"ready\"\nready-timeout = \"1s\"\n")
    };
    let r = Repos::new(&b, &[("bgrun.toml", &ready("api v1 ready"))]);
    up(&b, &r.work);
    let old = r.head();
    // The new version never says it is ready.
    let broken = ready("api v2");
    r.push("v2 is never ready", &[("bgrun.toml", &broken)]);
    let (code, report, err) = deploy(&b, &r.work, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(report["rolled_back"], true, "{report}");
    assert!(report["reason"].as_str().unwrap().starts_with("api: "), "{report}");
    assert_eq!(r.head(), old, "the checkout is back where it was");
    wait_until("api v1 again", SECS(10), || (b.tail_text("api", 1) == ["api v1 ready"]).then_some(()));
    assert_eq!(b.state("api"), "ready");
    // Kept as it is with --no-rollback.
    let (code, report, _) = deploy(&b, &r.work, &["--no-rollback"]);
    assert_eq!((code, report["rolled_back"].clone()), (1, Value::Bool(false)));
    assert_ne!(r.head(), old);
}

#[test]
fn a_version_that_is_ready_but_never_healthy_is_rolled_back() {
    let b = Bgrun::new(SECS(60));
    let toml = "[jobs.api]\ncmd = \"echo ready; exec sleep 60\"\nready-when = \"ready\"\n\
                health-check-exec = \"grep -q ok health\"\nhealth-interval = \"200ms\"\nhealth-timeout = \"1s\"\n\
                health-start-period = \"1s\"\n";
    let r = Repos::new(&b, &[("bgrun.toml", toml), ("health", "ok")]);
    up(&b, &r.work);
    // A new version whose health check passes: the deploy waits for it, and goes through.
    r.push("v2", &[("version", "2")]);
    let (code, report, err) = deploy(&b, &r.work, &[]);
    assert_eq!(code, 0, "{err} {report}");
    let healthy = r.head();
    // One that gets ready but fails its health check once the start period is over.
    r.push("v3 is unhealthy", &[("health", "bad")]);
    let (code, report, err) = deploy(&b, &r.work, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(report["rolled_back"], true, "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.starts_with("api: not healthy"), "{reason}");
    assert_eq!(r.head(), healthy, "the checkout is back where it was");
    assert_eq!(std::fs::read_to_string(r.work.join("health")).unwrap(), "ok");
    assert_eq!(b.state("api"), "ready");
}

#[test]
fn a_version_behind_listen_that_never_gets_ready_is_rolled_back_while_the_old_one_serves() {
    let b = Bgrun::new(SECS(60));
    let port = free_port();
    let toml = format!(
        "[jobs.web]\ncmd = \"python3 -u server.py\"\nlisten = \"127.0.0.1:{port}\"\nready-when = \"serving\"\n\
         ready-timeout = \"2s\"\n"
    );
    let r = Repos::new(&b, &[("bgrun.toml", &toml), ("server.py", &server("v1", None))]);
    up(&b, &r.work);
    let head = r.head();
    let load = Load::start(port, 4);
    // v2 hangs before it serves: it never gets ready (nor takes a connection).
    r.push("v2 hangs", &[("server.py", "import time\ntime.sleep(1000)\n")]);
    let (code, report, err) = deploy(&b, &r.work, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(report["rolled_back"], true, "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("the new run was not ready within 2s"), "{reason}");
    assert_eq!(r.head(), head, "the checkout is back where it was");
    // Replaced start-first: the old version served throughout, and serves on.
    let answers = load.take_answers();
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(answers.keys().collect::<Vec<_>>(), ["v1"], "{answers:?}");
    assert_eq!((b.state("web"), request(port).unwrap()), ("ready".to_string(), "v1".to_string()));
}

/// Answers each request with its version; drains on SIGTERM (see tests/sockets.rs). With
/// `own_port` it binds the port itself instead of taking fd 3.
fn server(version: &str, own_port: Option<u16>) -> String {
    let socket = match own_port {
        Some(port) => format!(
            "socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen(128)"
        ),
        None => "socket.socket(fileno=3)".to_string(),
    };
    format!(
        "import select, signal, socket\nstopping = []\nsignal.signal(signal.SIGTERM, lambda *_: stopping.append(1))\n\
         s = {socket}\nprint('serving', flush=True)\nwhile not stopping:\n    if select.select([s], [], [], 0.05)[0]:\n        \
         c, _ = s.accept()\n        c.recv(1024)\n        c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\n{version}')\n        c.close()\n"
    )
}

/// Clients sending requests back to back during `deploys` deploys of a new server version each;
/// returns (succeeded, failed).
fn deploys_under_load(b: &Bgrun, port: u16, listen: bool, deploys: usize) -> (usize, usize) {
    let toml = match listen {
        true => format!(
            "[jobs.web]\ncmd = \"python3 -u server.py\"\nlisten = \"127.0.0.1:{port}\"\nready-when = \"serving\"\n"
        ),
        false => format!("[jobs.web]\ncmd = \"python3 -u server.py\"\nready-when-port = {port}\n"),
    };
    let own = (!listen).then_some(port);
    let r = Repos::new(b, &[("bgrun.toml", &toml), ("server.py", &server("v0", own))]);
    up(b, &r.work);
    let load = Load::start(port, 4);
    for i in 1..=deploys {
        if listen && i == deploys / 2 {
            // The socket survives a daemon killed -9 between two deploys.
            kill_daemon(b);
        }
        r.push(&format!("v{i}"), &[("server.py", &server(&format!("v{i}"), own))]);
        let (code, _, err) = deploy(b, &r.work, &[]);
        assert_eq!(code, 0, "deploy {i}: {err}");
        assert_eq!(request(port).unwrap(), format!("v{i}"));
    }
    load.finish()
}

#[test]
fn deploys_of_a_server_behind_listen_fail_no_request_and_without_it_do() {
    let b = Bgrun::new(SECS(120));
    let port = free_port();
    let (ok, failed) = deploys_under_load(&b, port, true, 10);
    assert_eq!(failed, 0, "behind listen: {failed} of {} requests failed", ok + failed);
    assert!(ok > 0);
    // The same server binding its own port: between the old run's end and the new one's bind,
    // connections are refused.
    let other = Bgrun::new(SECS(120));
    let port = free_port();
    let (ok_own, failed_own) = deploys_under_load(&other, port, false, 10);
    eprintln!(
        "10 deploys under load: behind listen {ok} ok, {failed} failed; own port {ok_own} ok, {failed_own} failed"
    );
    let failed = failed_own;
    assert!(failed > 0, "a server binding its own port loses requests while it restarts");
}

#[test]
fn a_job_with_fetch_fast_forwards_its_checkout_before_each_start_or_fails_saying_why() {
    let b = Bgrun::new(SECS(60));
    let toml = "[jobs.app]\ncmd = \"cat version.txt; exec sleep 60\"\nfetch = true\n";
    let r = Repos::new(&b, &[("bgrun.toml", toml), ("version.txt", "v1\n")]);
    up(&b, &r.work);
    wait_until("v1", SECS(10), || (b.tail_text("app", 1) == ["v1"]).then_some(()));
    r.push("v2", &[("version.txt", "v2\n")]);
    b.json(&["restart", "app"]);
    wait_until("v2 after the restart", SECS(10), || (b.tail_text("app", 1) == ["v2"]).then_some(()));
    assert_eq!(r.head(), git(&r.dev, &["rev-parse", "HEAD"]), "the checkout moved");
    // A refusal fails the start, saying why, and moves nothing.
    r.push("v3", &[("version.txt", "v3\n")]);
    std::fs::write(r.work.join("version.txt"), "edited\n").unwrap();
    let head = r.head();
    let _ = b.cmd(&["restart", "app"]).output().unwrap();
    let reason = wait_until("the start to fail", SECS(10), || {
        let s = b.status("app");
        (s["state"] == "crashed").then(|| s["reason"].as_str().unwrap().to_string())
    });
    assert!(reason.contains("fetch: tracked files are modified: version.txt"), "{reason}");
    assert_eq!(r.head(), head);
}
