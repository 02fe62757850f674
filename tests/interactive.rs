//! Agent-facing commands: send, stats, schema, completions, skill.

mod common;
use common::*;
use serde_json::{Value, json};

#[test]
fn send_reaches_stdin_and_comes_back_in_tail() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "cat", "cat"]);
    assert_eq!(b.json(&["send", "cat", "hello from send", "--enter"]), json!({"ok": true}));
    b.json(&["send", "cat", "second"]);
    b.json(&["send", "cat", "--enter"]);
    wait_until("echoed", SECS(10), || (b.tail_text("cat", 5) == ["hello from send", "second"]).then_some(()));
    b.json(&["kill", "cat"]);
    assert!(b.fails(&["send", "cat", "late"]).contains("not running"));
}

/// The job's stdin is a pipe its supervisor holds (no file in the job's directory), so a daemon
/// that comes back after a `kill -9` still reaches the job that was reading it all along; and a
/// run makes no more files than its log and its supervisor's lock: its spec comes to the
/// supervisor on its launch socket (each file a run creates is an inode to allocate, the largest
/// cost of starting a job on some file systems).
#[test]
fn send_reaches_a_job_across_a_daemon_killed_hard_and_a_run_makes_three_files() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "cat", "cat"]);
    let pid = b.pid("cat");
    b.json(&["send", "cat", "before", "--enter"]);
    wait_until("echoed", SECS(10), || (b.tail_text("cat", 5) == ["before"]).then_some(()));
    kill_daemon(&b);
    b.json(&["send", "cat", "after", "--enter"]);
    wait_until("echoed again", SECS(10), || (b.tail_text("cat", 5) == ["before", "after"]).then_some(()));
    assert_eq!(b.pid("cat"), pid);
    let dir = std::fs::read_dir(b.home.join("jobs")).unwrap().next().unwrap().unwrap().path();
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["output.idx", "output.log", "shim.lock"]);
    b.json(&["kill", "cat"]);
    assert!(b.fails(&["send", "cat", "late"]).contains("not running"));
}

#[test]
fn stats_measure_the_whole_tree() {
    let b = Bgrun::new(SECS(30));
    b.json(&[
        "run",
        "--name",
        "busy",
        "sh -c 'while :; do :; done' & python3 -c 'b = bytearray(30 << 20); import time; time.sleep(60)' & wait",
    ]);
    wait_until("both children", SECS(10), || (descendants(b.pid("busy")).len() >= 2).then_some(()));
    let s = wait_until("memory counted", SECS(10), || {
        let s = b.json(&["stats", "busy"]);
        (s["rss_mb"].as_u64().unwrap() >= 30).then_some(s)
    });
    assert!(s["cpu_pct"].as_f64().unwrap() > 10.0, "{s}");
    assert!(s["processes"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["uptime_secs"].is_u64());
    b.json(&["kill", "busy"]);
}

/// Enough of JSON Schema draft-07 for what `bgrun schema` generates.
fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{value} is not {t}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{value} is not one of {options:?}"));
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_u64), value.as_u64())
        && n > max
    {
        return Err(format!("{n} > {max}"));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_u64), value.as_u64())
        && n < min
    {
        return Err(format!("{n} < {min}"));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array)
        && options.iter().filter(|o| validate(o, value).is_ok()).count() != 1
    {
        return Err(format!("{value} is not exactly one of {options:?}"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let re = regex::Regex::new(pattern).unwrap();
        if !re.is_match(value.as_str().unwrap_or_default()) {
            return Err(format!("{value} does not match {pattern}"));
        }
    }
    if let Some(items) = schema.get("items") {
        for v in value.as_array().unwrap() {
            validate(items, v)?;
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let obj = value.as_object().unwrap();
        for key in schema["required"].as_array().unwrap() {
            if !obj.contains_key(key.as_str().unwrap()) {
                return Err(format!("missing {key}"));
            }
        }
        for (k, v) in obj {
            let Some(p) = props.get(k) else { return Err(format!("unknown property {k}")) };
            validate(p, v)?;
        }
    }
    Ok(())
}

/// The command line a schema-shaped call stands for.
fn to_args(command: &str, call: &Value, positional: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_string()];
    let mut trailing = Vec::new();
    for (k, v) in call.as_object().unwrap() {
        let values: Vec<String> = match v {
            Value::Array(a) => a.iter().map(|x| x.as_str().map_or(x.to_string(), String::from)).collect(),
            Value::String(s) => vec![s.clone()],
            Value::Bool(true) => vec![],
            Value::Bool(false) => continue,
            other => vec![other.to_string()],
        };
        if positional.contains(&k.as_str()) {
            trailing.extend(values);
        } else if values.is_empty() {
            args.push(format!("--{k}"));
        } else {
            for value in values {
                args.push(format!("--{k}"));
                args.push(value);
            }
        }
    }
    args.extend(trailing);
    args
}

#[test]
fn each_schema_validates_the_arguments_of_a_real_call() {
    let b = Bgrun::new(SECS(60));
    let run = b.json(&["schema", "run"]);
    assert_eq!(run["$schema"], "http://json-schema.org/draft-07/schema#");
    let call = json!({"name": "api", "restart": "on-crash", "backoff": "500ms", "ready-when": ["ready"],
                      "ready-timeout": "10s", "max-rss": 512, "env": ["A=1"], "pty": false, "cmd": ["sh", "-c", "echo ready; exec sleep 30"]});
    validate(&run, &call).unwrap();
    assert!(validate(&run, &json!({"restart": "sometimes", "cmd": ["x"]})).is_err());
    assert!(validate(&run, &json!({"nonsense": 1, "cmd": ["x"]})).is_err());
    // The validated call runs.
    let out = b.cmd(&to_args("run", &call, &["cmd"]).iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(b.json(&["wait", "api"])["ready"], true);

    let tail = b.json(&["schema", "tail"]);
    let call = json!({"id": "api", "lines": 5, "stream": "stdout", "strip-ansi": true});
    validate(&tail, &call).unwrap();
    let out = b.cmd(&to_args("tail", &call, &["id"]).iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    let lines: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lines["lines"][0]["content"], "ready");

    let kill = b.json(&["schema", "kill"]);
    let call = json!({"id": "api", "grace": "1s"});
    validate(&kill, &call).unwrap();
    let out = b.cmd(&to_args("kill", &call, &["id"]).iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(b.state("api"), "killed");
}

#[test]
fn completions() {
    let b = Bgrun::new(SECS(30));
    // No daemon running: live completion prints nothing and starts nothing.
    let out = b.run_raw(&["completions", "--active-ids"]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(b.daemon_pid().is_none_or(|p| !alive(p)));
    for shell in ["bash", "zsh", "fish"] {
        let out = b.run_raw(&["completions", "--shell", shell]);
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}");
        if shell == "bash" {
            let path = b.home.join("bgrun.bash");
            std::fs::write(&path, &out.stdout).unwrap();
            let check = std::process::Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains("bgrun completions --active-ids"));
        }
    }
    let job = b.json(&["run", "--name", "web", "--workspace", "shop", "sleep", "30"]);
    let ids = String::from_utf8(b.run_raw(&["completions", "--active-ids"]).stdout).unwrap();
    assert_eq!(ids, format!("{}\tweb ready\n", &job["id"].as_str().unwrap()[..8]), "one line per job");
    let names = String::from_utf8(b.run_raw(&["completions", "--active-names"]).stdout).unwrap();
    assert!(names.starts_with("web\t"), "{names}");
    assert_eq!(String::from_utf8(b.run_raw(&["completions", "--workspaces"]).stdout).unwrap(), "shop\n");
    b.json(&["kill", "web"]);
}

#[test]
fn the_skill_mentions_every_command() {
    use clap::CommandFactory;
    let skill = bgrun::cli::SKILL;
    for cmd in bgrun::cli::Cli::command().get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = cmd.get_name();
        assert!(skill.contains(&format!("bgrun {name}")), "SKILL.md never shows `bgrun {name}`");
    }
    let b = Bgrun::new(SECS(30));
    let dir = b.home.join("skills/bgrun");
    let out = b.json(&["skill", "install", dir.to_str().unwrap()]);
    assert!(out["installed"].as_str().unwrap().ends_with("SKILL.md"));
    assert_eq!(std::fs::read_to_string(dir.join("SKILL.md")).unwrap(), skill);
}

#[test]
fn pty_jobs_have_a_terminal_and_their_screen_is_rendered() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "term", "--pty", "--cols", "100", "--rows", "30", "tty; stty size; exec cat"]);
    wait_until("tty and size", SECS(10), || {
        let lines = b.tail_text("term", 5);
        (lines.len() >= 2).then_some(lines)
    });
    let lines = b.tail_text("term", 5);
    assert!(lines[0].starts_with("/dev/pts/"), "{lines:?}");
    assert_eq!(lines[1], "30 100");
    b.json(&["send", "term", "typed into the terminal", "--enter"]);
    wait_until("echo", SECS(10), || {
        b.tail_text("term", 5).iter().any(|l| l == "typed into the terminal").then_some(())
    });
    // A program that redraws in place: the screen shows only its latest state.
    b.json(&["run", "--name", "counter", "--pty", "i=0; while [ $i -lt 50 ]; do i=$((i+1)); printf '\\rcount %3d' $i; sleep 0.01; done; printf '\\n'; exec sleep 30"]);
    let screen = wait_until("counted to 50", SECS(10), || {
        let s = b.json(&["screen", "counter"]);
        (s.as_array().unwrap().iter().any(|l| l == "count  50")).then_some(s)
    });
    assert_eq!(screen, json!(["count  50"]));
    // A piped job's screen is its last lines.
    b.json(&["run", "--name", "plain", "printf 'a\\nb\\nc\\n'; exec sleep 30"]);
    wait_until("plain lines", SECS(10), || {
        (b.json(&["screen", "plain", "--lines", "2"]) == json!(["b", "c"])).then_some(())
    });
    for j in ["term", "counter", "plain"] {
        b.json(&["kill", j]);
    }
}

/// `bgrun ARGS` on a terminal of 120x40 this test holds the other end of.
struct Attached {
    child: std::process::Child,
    master: std::fs::File,
    seen: Vec<u8>,
}

impl Attached {
    fn new(b: &Bgrun, args: &[&str]) -> Attached {
        use std::os::fd::AsRawFd;
        let size = nix::pty::Winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let fd = |f: &std::os::fd::OwnedFd| std::process::Stdio::from(f.try_clone().unwrap());
        let child = b.cmd(args).stdin(fd(&pty.slave)).stdout(fd(&pty.slave)).stderr(fd(&pty.slave)).spawn().unwrap();
        drop(pty.slave);
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(pty.master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Attached { child, master: std::fs::File::from(pty.master), seen: Vec::new() }
    }

    fn type_in(&mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self.master, bytes).unwrap();
    }

    /// Waits until the terminal has shown `want` (bytes, not only text).
    fn read_until(&mut self, want: &[u8]) {
        let what = String::from_utf8_lossy(want).into_owned();
        wait_until(&what, SECS(15), || {
            let mut buf = [0u8; 4096];
            if let Ok(n) = std::io::Read::read(&mut self.master, &mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
            self.seen.windows(want.len()).any(|w| w == want).then_some(())
        })
    }
}

#[test]
fn attach_through_a_real_terminal() {
    let b = Bgrun::new(SECS(60));
    b.json(&["run", "--name", "shell", "--pty", "sh"]);
    let mut a = Attached::new(&b, &["attach", "shell"]);
    // Keystrokes in, output out; the job's terminal took our size.
    a.type_in(b"echo $((6*7)); stty size\r");
    a.read_until(b"42");
    a.read_until(b"40 120");
    // Ctrl+C detaches; the job lives on.
    a.type_in(&[0x03]);
    a.read_until(b"detached from shell");
    assert!(a.child.wait().unwrap().success());
    assert_eq!(b.state("shell"), "ready");
    // Attaching needs a PTY job.
    b.json(&["run", "--name", "piped", "sleep", "30"]);
    let out = b.run_raw(&["attach", "piped"]);
    assert!(!out.status.success());
    b.json(&["kill", "shell"]);
    b.json(&["kill", "piped"]);
}

#[test]
fn detach_keys_let_ctrl_c_reach_the_job_and_bytes_arrive_intact() {
    let b = Bgrun::new(SECS(60));
    // Says so when interrupted, in bytes that are not UTF-8 (a lossy string would mangle them).
    let job = "trap \"printf 'got INT \\377\\n'\" INT; while :; do sleep 0.1; done";
    b.json(&["run", "--name", "repl", "--pty", job]);
    let mut a = Attached::new(&b, &["attach", "repl", "--detach-keys", "ctrl-]"]);
    // The job's screen is drawn once attach has put our terminal in raw mode.
    a.read_until(b"\x1b[H\x1b[J");
    a.type_in(&[0x03]);
    a.read_until(b"got INT \xff");
    a.type_in(&[0x1d]);
    a.read_until(b"detached from repl");
    assert!(a.child.wait().unwrap().success());
    assert_eq!(b.state("repl"), "ready");
    b.json(&["kill", "repl"]);
}

#[test]
fn the_menu_on_a_terminal_and_a_list_without_one() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "menujob", "sleep", "30"]);
    // Piped, `bgrun` alone lists.
    let listed = String::from_utf8(b.run_raw(&[]).stdout).unwrap();
    assert!(listed.contains("\"name\":\"menujob\""), "{listed}");
    // On a terminal: list, kill job 1, list again, exit.
    let text = b.on_terminal("", None, b"1\n5\n1\n1\n6\n");
    assert!(text.contains("1) List & refresh jobs") && text.contains("6) Exit menu"), "{text}");
    assert!(text.contains("menujob"), "{text}");
    assert!(text.contains("killed"), "{text}");
    assert_eq!(b.state("menujob"), "killed");
}

/// The README's 30-second tour, run as written in an empty directory.
#[test]
fn the_readme_tour_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let tour = readme.split("## A 30-second tour").nth(1).unwrap();
    let script = tour.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let b = Bgrun::new(SECS(90));
    let dir = b.home.join("tour");
    std::fs::create_dir_all(&dir).unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("sh")
        .args(["-e", "-c", script])
        .current_dir(&dir)
        .env("BGRUN_HOME", &b.home)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the tour failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Serving HTTP"));
}

/// Stands in for a full-screen program such as htop (whose screen never looks the same twice):
/// it draws a frame once (again when its terminal is resized, at the new size), then redraws one
/// field in place for far longer than any replay of recent output would cover.
const FULL_SCREEN: &str = r#"import os, signal, sys, time
w = sys.stdout.write
def frame(*_):
    rows = os.get_terminal_size().lines
    w("\x1b[2J\x1b[H" + "TITLE bar" + "\x1b[%d;1H" % rows + "FOOTER bar %d" % rows + "\x1b[10;5Hcount 019999")
    sys.stdout.flush()
signal.signal(signal.SIGWINCH, frame)
w("\x1b[?1049h")
frame()
for i in range(20000):
    w("\x1b[10;5Hcount %06d" % i)
sys.stdout.flush()
time.sleep(60)
"#;

#[test]
fn screen_shows_a_full_screen_program_as_a_terminal_does_at_any_age() {
    let b = Bgrun::new(SECS(60));
    let prog = b.home.join("full.py");
    std::fs::write(&prog, FULL_SCREEN).unwrap();
    let prog = prog.display().to_string();
    b.json(&["run", "--name", "top", "--pty", "--cols", "80", "--rows", "24", "python3", &prog]);
    // The same program in a terminal multiplexer of the same size: its capture is the reference.
    let socket = format!("bgrun-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux (.ci/run installs it)")
    };
    let started = tmux(&["new-session", "-d", "-x", "80", "-y", "24", "python3", &prog]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let reference: Vec<String> = wait_until("tmux to show the last count", SECS(30), || {
        let shown = String::from_utf8(tmux(&["capture-pane", "-p"]).stdout).ok()?;
        shown.contains("count 019999").then(|| shown.lines().map(|l| l.trim_end().to_string()).collect())
    });
    let trimmed = |v: &[String]| {
        let mut v = v.to_vec();
        while v.last().is_some_and(|l| l.is_empty()) {
            v.pop();
        }
        v
    };
    // bgrun's screen, once it equals the reference (it trails the program by up to 100 ms).
    let screen_like = |reference: &[String], rows: &str| -> Vec<String> {
        let want = trimmed(reference);
        wait_until("bgrun's screen to show what tmux shows", SECS(30), || {
            let lines = b.json(&["screen", "top", "--lines", rows]).as_array()?.clone();
            let lines: Vec<String> = lines.iter().filter_map(|l| l.as_str().map(String::from)).collect();
            (trimmed(&lines) == want).then_some(lines)
        })
    };
    let now = screen_like(&reference, "24");
    assert!(now.iter().any(|l| l.contains("TITLE bar")), "the frame drawn long ago is gone: {now:?}");
    // Attached from a bigger terminal, the job's terminal grows to it, and so do both screens.
    let mut a = Attached::new(&b, &["attach", "top"]);
    a.read_until(b"count 019999");
    let _ = tmux(&["resize-window", "-x", "120", "-y", "40"]);
    let reference: Vec<String> = wait_until("tmux's program to redraw at 40 rows", SECS(10), || {
        let shown = String::from_utf8(tmux(&["capture-pane", "-p"]).stdout).ok()?;
        shown.contains("FOOTER bar 40").then(|| shown.lines().map(|l| l.trim_end().to_string()).collect())
    });
    let _ = tmux(&["kill-server"]);
    a.type_in(&[0x03]);
    a.read_until(b"detached from top");
    let _ = a.child.wait();
    let resized = screen_like(&reference, "40");
    assert_eq!(resized.len(), 40, "the footer is on the 40th row: {resized:?}");
    b.json(&["kill", "top"]);
}

#[test]
fn attach_to_an_idle_prompt_draws_it_once() {
    let b = Bgrun::new(SECS(30));
    b.json(&["run", "--name", "idle", "--pty", "printf 'PROMPT> '; exec cat"]);
    wait_until("the prompt", SECS(10), || (b.json(&["screen", "idle"])[0] == "PROMPT>").then_some(()));
    let mut a = Attached::new(&b, &["attach", "idle"]);
    a.read_until(b"PROMPT> ");
    // A key typed now is echoed after anything attach still had to send: the prompt again, if
    // the screen and the log it resumes from overlapped.
    a.type_in(b"x");
    a.read_until(b"x");
    let prompts = a.seen.windows(8).filter(|w| *w == b"PROMPT> ").count();
    assert_eq!(prompts, 1, "{}", String::from_utf8_lossy(&a.seen));
    a.type_in(&[0x03]);
    a.read_until(b"detached from idle");
    let _ = a.child.wait();
    b.json(&["kill", "idle"]);
}

/// `bgrun schema run` and the command line take the same values: what one accepts, so does the
/// other (sizes with units for max-rss, at least one cell for cols and rows).
#[test]
fn the_run_schema_and_the_command_line_agree() {
    let b = Bgrun::new(SECS(30));
    let run = b.json(&["schema", "run"]);
    let cases: [(&str, Value, bool); 7] = [
        ("max-rss", json!(512), true),
        ("max-rss", json!("512MB"), true),
        ("max-rss", json!("1.5GB"), true),
        ("max-rss", json!("lots"), false),
        ("cols", json!(120), true),
        ("cols", json!(0), false),
        ("rows", json!(0), false),
    ];
    for (flag, value, ok) in cases {
        let call = json!({ flag: value.clone(), "cmd": ["true"] });
        assert_eq!(validate(&run, &call).is_ok(), ok, "schema: --{flag} {value}");
        let text = value.as_str().map_or(value.to_string(), String::from);
        // --help-like parsing only: an accepted value goes on to run `true`, a refused one exits 2.
        let out = b.run_raw(&["run", &format!("--{flag}"), &text, "true"]);
        assert_eq!(out.status.code() != Some(2), ok, "cli: --{flag} {text}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
