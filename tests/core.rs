//! The core: daemon, jobs that outlive it, logs, and the everyday commands, driven through the
//! real binary.

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

fn has_keys(v: &Value, want: &[&str]) {
    let got = keys(v);
    for k in want {
        assert!(got.contains(k), "missing {k:?} in {v}");
    }
}

#[test]
fn every_command_prints_the_contract_json() {
    let b = Bgrun::new(SECS(60));
    let run = b.json(&["run", "--name", "web", "--workspace", "shop", "sh -c 'echo hello; echo oops >&2; sleep 30'"]);
    has_keys(&run, &["id", "name", "workspace", "cmd", "pid", "state", "started_at"]);
    assert_eq!(run["name"], "web");
    assert_eq!(run["workspace"], "shop");
    assert!(run["pid"].as_i64().unwrap() > 0);
    assert_eq!(run["state"], "ready");

    // list is NDJSON: one object per line.
    b.json(&["run", "--name", "other", "sleep", "30"]);
    let out = b.run_raw(&["list"]);
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    has_keys(&lines[0], &["id", "name", "workspace", "cmd", "pid", "state", "started_at"]);
    let ws = b.run_raw(&["list", "--workspace", "shop"]);
    assert_eq!(String::from_utf8(ws.stdout).unwrap().lines().count(), 1);

    let st = b.status("web");
    has_keys(&st, &["state", "exit_code", "ready_at", "restart_count", "last_diff_cursor"]);
    assert!(st["ready_at"].is_string());
    assert_eq!(b.json(&["status", "--name", "web"])["id"], run["id"]);
    // An id prefix of 4+ characters works too.
    let prefix = &run["id"].as_str().unwrap()[..6];
    assert_eq!(b.json(&["status", prefix])["id"], run["id"]);

    wait_until("both lines logged", SECS(10), || (b.tail_text("web", 10).len() == 2).then_some(()));
    let tail = b.json(&["tail", "web"]);
    has_keys(&tail["lines"][0], &["line_number", "content", "timestamp"]);
    assert_eq!(tail["lines"][0]["content"], "hello");
    assert_eq!(tail["lines"][1]["line_number"], 2);
    // `-n` counts lines, as tail(1)'s does; the job's name is `--name` there.
    let last = b.json(&["tail", "--name", "web", "-n", "1"]);
    assert_eq!(last["lines"].as_array().unwrap().len(), 1);
    assert_eq!(last["lines"][0]["line_number"], 2);

    let diff = b.json(&["diff", "web"]);
    has_keys(&diff, &["cursor", "lines"]);
    assert!(diff["cursor"].as_u64().unwrap() > 0);
    assert_eq!(diff["lines"].as_array().unwrap().len(), 2);

    let digest = b.json(&["tail", "web", "--digest"]);
    has_keys(&digest, &["lines", "errors", "warnings", "last_error"]);

    let killed = b.json(&["kill", "web"]);
    assert_eq!(killed, serde_json::json!({ "killed": [run["id"]] }));
    let ws_killed = b.json(&["kill", "--workspace", "nobody"]);
    assert_eq!(ws_killed, serde_json::json!({ "killed": [] }));

    let clean = b.json(&["clean", "--force"]);
    assert_eq!(clean, serde_json::json!({ "removed": [run["id"]] }));

    let d = b.json(&["daemon", "status"]);
    has_keys(&d, &["pid", "version", "uptime_secs", "socket"]);
    assert_eq!(d["pid"].as_i64().unwrap() as i32, b.daemon_pid().unwrap());
    assert_eq!(b.json(&["daemon", "stop"]), serde_json::json!({ "stopped": true }));
}

#[test]
fn jobs_and_their_output_survive_a_daemon_killed_hard() {
    let b = Bgrun::new(SECS(60));
    b.json(&["run", "--name", "ticker", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done"]);
    let pid = b.pid("ticker");
    wait_until("first ticks", SECS(10), || (!b.tail_text("ticker", 1).is_empty()).then_some(()));
    let daemon = b.daemon_pid().unwrap();
    kill_daemon(&b);
    // With no daemon at all, the job keeps writing to its log.
    let log = std::fs::read_dir(b.home.join("jobs")).unwrap().next().unwrap().unwrap().path().join("output.log");
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until("output written while the daemon is dead", SECS(10), || {
        (std::fs::metadata(&log).unwrap().len() > size + 200).then_some(())
    });
    assert!(alive(pid));
    // The next command starts a new daemon, which re-adopts the same process.
    assert_eq!(b.pid("ticker"), pid);
    assert_eq!(b.state("ticker"), "ready");
    assert_ne!(b.daemon_pid().unwrap(), daemon);
    let numbers: Vec<u64> =
        b.tail_text("ticker", 1000).iter().map(|l| l.strip_prefix("tick ").unwrap().parse().unwrap()).collect();
    // Nothing lost across the gap: consecutive tick numbers.
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "gap in {numbers:?}");
    let events = b.status("ticker")["events"].to_string();
    assert!(events.contains("adopted"), "{events}");
    b.json(&["kill", "ticker"]);
    assert!(!alive(pid));
}

#[test]
fn a_job_that_ends_while_the_daemon_is_down_is_recorded() {
    let b = Bgrun::new(SECS(60));
    let dir = b.home.join("gate");
    b.json(&["run", "--name", "short", &format!("while [ ! -e {} ]; do sleep 0.01; done; exit 7", dir.display())]);
    b.json(&["daemon", "stop"]);
    std::fs::write(&dir, "").unwrap();
    // Its supervisor records how it ended, then exits, which releases the job directory's lock.
    let lock = std::fs::read_dir(b.home.join("jobs")).unwrap().next().unwrap().unwrap().path().join("shim.lock");
    wait_until("job ended", SECS(10), || {
        let file = std::fs::File::open(&lock).ok()?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock).ok().map(drop)
    });
    let st = b.status("short");
    assert_eq!(st["state"], "crashed");
    assert_eq!(st["exit_code"], 7);
}

#[test]
fn twenty_concurrent_cold_starts_make_one_daemon() {
    let b = Bgrun::new(SECS(60));
    let children: Vec<_> =
        (0..20).map(|_| b.cmd(&["list"]).stdout(std::process::Stdio::piped()).spawn().unwrap()).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let daemons: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let home = format!("BGRUN_HOME={}", b.home.display());
            cmdline.split(|c| *c == 0).next().is_some_and(|a| a.ends_with(b"/bgrun-daemon"))
                && env.split(|c| *c == 0).any(|kv| kv == home.as_bytes())
                && alive(*pid)
        })
        .collect();
    assert_eq!(daemons, vec![b.daemon_pid().unwrap()]);
}

#[test]
fn kill_escalates_for_a_job_that_ignores_sigterm() {
    let b = Bgrun::new(SECS(60));
    b.json(&[
        "run",
        "--name",
        "stubborn",
        "--grace",
        "1s",
        "trap '' TERM; echo armed; while true; do sleep 0.05; done",
    ]);
    wait_until("trap armed", SECS(10), || (b.tail_text("stubborn", 1) == ["armed"]).then_some(()));
    let pid = b.pid("stubborn");
    let started = Instant::now();
    b.json(&["kill", "stubborn"]);
    let took = started.elapsed();
    assert!(!alive(pid), "still alive after kill returned");
    assert!(took >= Duration::from_millis(900), "SIGKILL came before the grace: {took:?}");
    assert!(took <= Duration::from_secs(2), "gone later than grace + 1s: {took:?}");
    assert_eq!(b.state("stubborn"), "killed");
}

#[test]
fn kill_takes_grandchildren_and_escaped_sessions_too() {
    let b = Bgrun::new(SECS(60));
    let script = "sleep 1000 & setsid sleep 1001 & sh -c 'sleep 1002' & echo spawned; wait";
    b.json(&["run", "--name", "family", script]);
    let pid = b.pid("family");
    wait_until("children started", SECS(10), || (descendants(pid).len() >= 3).then_some(()));
    let family = descendants(pid);
    let started = Instant::now();
    b.json(&["kill", "family"]);
    for p in family.iter().chain([&pid]) {
        assert!(!alive(*p), "pid {p} outlived kill");
    }
    // They all honour SIGTERM, the escaped session included: nobody waits for the SIGKILL.
    assert!(started.elapsed() < Duration::from_secs(3), "kill took {:?} (grace is 5s)", started.elapsed());
}

#[test]
fn what_a_job_leaves_behind_is_stopped_when_it_exits() {
    let b = Bgrun::new(SECS(60));
    let marker = b.home.join("bg.pid");
    b.json(&["run", "--name", "leaver", &format!("sleep 1003 & echo $! > {}; echo bye", marker.display())]);
    let bg: i32 = wait_until("background pid", SECS(10), || std::fs::read_to_string(&marker).ok()?.trim().parse().ok());
    wait_until("job finished", SECS(10), || (b.state("leaver") == "exited").then_some(()));
    assert!(!alive(bg), "the job's leftover process {bg} is still running");
}

#[test]
fn a_bad_spawn_leaves_nothing_behind() {
    let b = Bgrun::new(SECS(60));
    let err = b.fails(&["run", "--name", "ghost", "no-such-program-bgrun-test", "arg"]);
    assert!(err.contains("command not found"), "{err}");
    let err = b.fails(&["run", "--cwd", "/no/such/dir", "true"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = b.fails(&["run", "--name", "bad name", "true"]);
    assert!(err.contains("invalid job name"), "{err}");
    let err = b.fails(&["run", "--backoff", "soon", "true"]);
    assert!(err.contains("soon"), "{err}");
    assert!(b.run_raw(&["list"]).stdout.is_empty());
    assert_eq!(std::fs::read_dir(b.home.join("jobs")).unwrap().count(), 0);
    let err = b.fails(&["status", "nope"]);
    assert!(err.contains("no job"), "{err}");
    assert!(b.fails(&["kill", "nope"]).contains("no job"));
}

#[test]
fn garbage_on_the_socket_does_not_hurt_the_daemon() {
    let b = Bgrun::new(SECS(60));
    b.json(&["run", "--name", "steady", "sleep", "30"]);
    let sock = b.home.join("daemon.sock");
    let attempts: Vec<Vec<u8>> = vec![
        b"\xff\xff\xff\xffgarbage".to_vec(),
        [&5u32.to_be_bytes()[..], b"{not"].concat(),
        [&14u32.to_be_bytes()[..], br#"{"v":1,"x":2}"#, b"!"].concat(),
        [&40u32.to_be_bytes()[..], br#"{"v":1,"request":{"type":"explode"}}    "#].concat(),
        [&3u32.to_be_bytes()[..]].concat(),
        b"\x00".to_vec(),
    ];
    for bytes in attempts {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(SECS(5))).unwrap();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
    }
    assert_eq!(b.state("steady"), "ready");
    let st = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(st.permissions().mode() & 0o777, 0o600);
}

#[test]
fn logs_are_lines_as_written() {
    let b = Bgrun::new(SECS(60));
    let script = r#"printf 'hel'; sleep 0.2; printf 'lo\n'; echo 'WARN: low disk'; echo 'error: boom' >&2; printf '\033[31mred\033[0m\n'; echo '^anchored'"#;
    b.json(&["run", "--name", "w", script]);
    wait_until("job done", SECS(10), || (b.state("w") == "exited").then_some(()));
    let only = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["tail", "w"];
        all.extend_from_slice(args);
        b.json(&all)["lines"].as_array().unwrap().iter().map(|l| l["content"].as_str().unwrap().to_string()).collect()
    };
    // Order is exact within a stream; across streams it is only as fine as the shim's reads.
    assert_eq!(only(&["--stream", "stdout"]), vec!["hello", "WARN: low disk", "\x1b[31mred\x1b[0m", "^anchored"]);
    assert_eq!(only(&["--stream", "stderr"]), vec!["error: boom"]);
    assert_eq!(b.tail_text("w", 10).len(), 5);
    assert_eq!(only(&["--level", "error"]), vec!["error: boom"]);
    assert_eq!(only(&["--level", "warn"]), vec!["WARN: low disk", "error: boom"]);
    assert_eq!(only(&["--filter-regex", "^r.d$", "--strip-ansi"]), vec!["red"]);
    assert_eq!(only(&["--stream", "stdout", "--lines", "2"]), vec!["\x1b[31mred\x1b[0m", "^anchored"]);
    let digest = b.json(&["tail", "w", "--digest"]);
    assert_eq!(digest["errors"], 1);
    assert_eq!(digest["warnings"], 1);
    assert_eq!(digest["last_error"], "error: boom");
}

#[test]
fn diff_cursor_advances() {
    let b = Bgrun::new(SECS(60));
    let gate = b.home.join("gate");
    b.json(&[
        "run",
        "--name",
        "d",
        &format!("echo one; echo two; while [ ! -e {} ]; do sleep 0.01; done; echo three", gate.display()),
    ]);
    wait_until("two lines", SECS(10), || (b.tail_text("d", 5).len() == 2).then_some(()));
    let first = b.json(&["diff", "d"]);
    assert_eq!(first["lines"].as_array().unwrap().len(), 2);
    let again = b.json(&["diff", "d"]);
    assert!(again["lines"].as_array().unwrap().is_empty());
    assert_eq!(again["cursor"], first["cursor"]);
    std::fs::write(&gate, "").unwrap();
    wait_until("three", SECS(10), || (b.state("d") == "exited").then_some(()));
    let last = b.json(&["diff", "d"]);
    assert_eq!(last["lines"][0]["content"], "three");
    assert_eq!(last["lines"][0]["line_number"], 3);
    assert_eq!(b.status("d")["last_diff_cursor"], last["cursor"]);
}

#[test]
fn follow_streams_until_the_job_ends() {
    let b = Bgrun::new(SECS(60));
    let gate = b.home.join("gate");
    b.json(&[
        "run",
        "--name",
        "f",
        &format!("echo start; while [ ! -e {} ]; do sleep 0.01; done; echo middle; echo end", gate.display()),
    ]);
    wait_until("start", SECS(10), || (b.tail_text("f", 5).len() == 1).then_some(()));
    let mut follower = b.cmd(&["tail", "f", "--follow"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::fs::write(&gate, "").unwrap();
    // The follower ends by itself when the job does; the watchdog catches it if it does not.
    let mut out = String::new();
    follower.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(follower.wait().unwrap().success());
    let contents: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(contents, vec!["start", "middle", "end"]);
}

#[test]
fn run_by_name_is_idempotent_while_alive() {
    let b = Bgrun::new(SECS(60));
    let a = b.json(&["run", "--name", "once", "sleep", "30"]);
    let again = b.json(&["run", "--name", "once", "sleep", "30"]);
    assert_eq!(a["id"], again["id"]);
    assert_eq!(a["pid"], again["pid"]);
    b.json(&["kill", "once"]);
    let rerun = b.json(&["run", "--name", "once", "sleep", "31"]);
    assert_eq!(rerun["id"], a["id"], "a finished named job runs again under its id");
    assert_ne!(rerun["pid"], a["pid"]);
    assert_eq!(b.run_raw(&["list"]).stdout.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count(), 1);
}

#[test]
fn environment_cwd_and_exit_states() {
    let b = Bgrun::new(SECS(60));
    let dir = b.home.join("work");
    std::fs::create_dir_all(&dir).unwrap();
    b.json(&[
        "run",
        "--name",
        "env",
        "--env",
        "GREETING=hi there",
        "--cwd",
        dir.to_str().unwrap(),
        "echo \"$GREETING from $(pwd)\"",
    ]);
    b.json(&["run", "--name", "fail", "exit 3"]);
    b.json(&["run", "--name", "direct", "printf", "%s|", "a b", "c"]);
    wait_until("all done", SECS(10), || ["env", "fail", "direct"].iter().all(|j| b.state(j) != "ready").then_some(()));
    assert_eq!(b.tail_text("env", 1), vec![format!("hi there from {}", dir.display())]);
    let fail = b.status("fail");
    assert_eq!(fail["state"], "crashed");
    assert_eq!(fail["exit_code"], 3);
    assert_eq!(b.tail_text("direct", 1), vec!["a b|c|"]);
    assert_eq!(b.state("env"), "exited");
}

#[test]
fn jobs_keep_running_across_daemon_stop() {
    let b = Bgrun::new(SECS(60));
    b.json(&["run", "--name", "cat", "cat"]);
    let pid = b.pid("cat");
    b.json(&["daemon", "stop"]);
    assert!(b.daemon_pid().is_none_or(|p| !alive(p)));
    // stdin is not a pipe from the daemon, so the job did not see end-of-file.
    assert!(alive(pid));
    assert_eq!(b.state("cat"), "ready");
    assert_eq!(b.pid("cat"), pid);
    b.json(&["kill", "cat"]);
}

#[test]
fn human_output_on_a_terminal_is_a_table() {
    let b = Bgrun::new(SECS(60));
    b.json(&["run", "--name", "pretty", "sleep", "30"]);
    let long = format!("echo {}; exec sleep 30", "x".repeat(200));
    b.json(&["run", "--name", "wordy", &long]);
    let text = b.on_terminal("list", None, b"");
    assert!(
        text.contains("NAME") && text.contains("PROJECT") && text.contains("pretty") && text.contains("ready"),
        "{text}"
    );
    // Long commands are cut to the terminal's width.
    assert!(text.lines().all(|l| l.trim_end().chars().count() <= 100), "{text}");
    assert!(text.contains("…"), "{text}");
    // State and reason are not said twice.
    let status = b.on_terminal("status pretty", None, b"");
    let state = status.lines().find(|l| l.starts_with("state")).unwrap();
    assert_eq!(state.split_whitespace().collect::<Vec<_>>(), ["state", "ready"], "{status}");
    // --json anywhere on the line forces JSON even on a terminal.
    let text = b.on_terminal("list --json", None, b"");
    assert!(text.trim_start().starts_with('{'), "{text}");
    b.json(&["kill", "pretty"]);
    b.json(&["kill", "wordy"]);
}

#[test]
fn an_unusable_home_is_one_clear_error() {
    let file = std::env::temp_dir().join(format!("bgt-file-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let out = std::process::Command::new(BIN).arg("list").env("BGRUN_HOME", &file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn settings_that_cannot_work_are_refused_with_one_line_each() {
    let b = Bgrun::new(SECS(30));
    let cases: [(&[&str], &str); 5] = [
        (&["run", "--ready-when-port", "0", "true"], "port 0"),
        (&["run", "--ready-when-url", "notaurl", "true"], "not an http"),
        (&["run", "--max-runtime", "0s", "true"], "--max-runtime"),
        (&["run", "--cwd", "/etc/passwd", "true"], "not a directory"),
        (&["run", "--health-interval", "soon", "true"], "not a duration"),
    ];
    for (args, says) in cases {
        let out = b.run_raw(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        // One line says what is wrong (then at most a hint).
        assert!(err.lines().next().is_some_and(|l| l.starts_with("error:") && l.contains(says)), "{args:?}: {err}");
    }
    assert!(b.run_raw(&["list"]).stdout.is_empty(), "a refused run created a job");
    let empty = b.cmd(&["list"]).env("BGRUN_HOME", "").output().unwrap();
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("BGRUN_HOME is set but empty"));
}

#[test]
fn a_filtered_diff_hides_nothing_from_a_plain_one() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "j", "cat"]);
    b.json(&["send", "j", "ERROR one\nok two\n"]);
    wait_until("two lines", SECS(10), || (b.tail_text("j", 10).len() == 2).then_some(()));
    let contents = |args: &[&str]| -> Vec<String> {
        let v = b.json(&[&["diff", "j"][..], args].concat());
        v["lines"].as_array().unwrap().iter().map(|l| l["content"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(contents(&["--filter-regex", "ERROR"]), ["ERROR one"]);
    // The line the filtered diff hid is still new to a plain diff.
    assert_eq!(contents(&[]), ["ERROR one", "ok two"]);
    // Each goes on from where it was.
    assert!(contents(&["--filter-regex", "ERROR"]).is_empty());
    assert!(contents(&[]).is_empty());
    b.json(&["send", "j", "ERROR three\n"]);
    wait_until("three lines", SECS(10), || (b.tail_text("j", 10).len() == 3).then_some(()));
    assert_eq!(contents(&["--filter-regex", "ERROR"]), ["ERROR three"]);
    assert_eq!(contents(&["--stream", "stdout"]), ["ERROR one", "ok two", "ERROR three"]);
    assert_eq!(contents(&[]), ["ERROR three"]);
    b.json(&["kill", "j"]);
}

#[test]
fn delete_forgets_one_job_and_nuke_every_job_only_when_meant() {
    let b = Bgrun::new(SECS(30));
    let doomed = b.json(&["run", "--name", "doomed", "sleep", "60"]);
    let kept = b.json(&["run", "--name", "kept", "sleep", "61"]);
    let (id, pid) = (doomed["id"].as_str().unwrap().to_string(), doomed["pid"].as_i64().unwrap() as i32);
    let removed = b.json(&["delete", "doomed"]);
    assert_eq!(removed["removed"][0].as_str(), Some(id.as_str()));
    assert!(!alive(pid), "stopped before the answer");
    assert!(!b.home.join("jobs").join(&id).exists(), "its log is gone too");
    let err = b.fails(&["status", "doomed"]);
    assert!(err.contains("no job"), "{err}");
    assert!(alive(kept["pid"].as_i64().unwrap() as i32), "another job is untouched");

    // Nobody at a terminal to confirm: nuke needs --force, and without it changes nothing.
    let out = b.run_raw(&["nuke"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --force"));
    assert_eq!(b.state("kept"), "ready");
    let removed = b.json(&["nuke", "--force"]);
    assert_eq!(removed["removed"].as_array().unwrap().len(), 1);
    assert!(!alive(kept["pid"].as_i64().unwrap() as i32));
    assert_eq!(String::from_utf8(b.run_raw(&["list"]).stdout).unwrap(), "");
}

#[test]
fn bgr_group_sets_the_workspace_and_list_filter_selects_it() {
    let b = Bgrun::new(SECS(30));
    let job: serde_json::Value = {
        let out = b.cmd(&["run", "--name", "grouped", "sleep", "60"]).env("BGR_GROUP", "shop").output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(job["workspace"], "shop");
    b.json(&["run", "--name", "other", "sleep", "61"]);
    let listed = String::from_utf8(b.run_raw(&["list", "--filter", "shop"]).stdout).unwrap();
    let names: Vec<String> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["grouped"]);
}

/// The unit `bgrun startup` writes passes systemd's own check, without a warning.
#[test]
fn the_startup_unit_passes_systemd_analyze_verify() {
    let b = Bgrun::new(SECS(30));
    let dir = b.home.join("units");
    std::fs::create_dir_all(&dir).unwrap();
    for scope in ["--user", "--system"] {
        let out = b.run_raw(&["startup", scope, "--print"]);
        assert!(out.status.success());
        let unit = String::from_utf8(out.stdout).unwrap();
        assert!(unit.contains("Type=notify") && unit.contains("KillMode=process"), "{unit}");
        assert!(unit.contains(&format!("Environment=BGRUN_HOME={}", b.home.display())), "{unit}");
        let path = dir.join("bgrun.service");
        std::fs::write(&path, &unit).unwrap();
        let verify = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (.ci/run installs systemd)");
        let said = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success() && said.trim().is_empty(), "{scope}: {said}");
    }
    // Written where systemd looks for user units, and removed again.
    let config = b.home.join("xdg");
    let out = b.cmd(&["startup"]).env("XDG_CONFIG_HOME", &config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(config.join("systemd/user/bgrun.service").is_file());
    assert!(b.cmd(&["unstartup"]).env("XDG_CONFIG_HOME", &config).output().unwrap().status.success());
    assert!(!config.join("systemd/user/bgrun.service").exists());
}

/// `bgrun daemon run` (what the startup unit runs) tells systemd it is ready (Type=notify) once
/// its socket listens: READY=1 on $NOTIFY_SOCKET.
#[test]
fn the_daemon_in_the_foreground_notifies_systemd_when_it_listens() {
    let b = Bgrun::new(SECS(30));
    let path = b.home.join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(SECS(10))).unwrap();
    let mut daemon = b.cmd(&["daemon", "run"]).env("NOTIFY_SOCKET", &path).spawn().unwrap();
    let mut said = [0u8; 64];
    let n = systemd.recv(&mut said).expect("READY=1 within 10 s");
    assert_eq!(&said[..n], b"READY=1");
    assert!(b.run_raw(&["list"]).status.success(), "it serves");
    b.json(&["daemon", "stop"]);
    assert!(daemon.wait().unwrap().success());
}
