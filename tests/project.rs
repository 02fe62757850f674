//! Declarative projects: bgrun.toml, up, down, plan, run-group and watch, against real processes.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

struct Project {
    dir: PathBuf,
}

impl Project {
    fn new(b: &Bgrun, name: &str, toml: &str) -> Project {
        let dir = b.home.join("projects").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bgrun.toml"), toml).unwrap();
        Project { dir }
    }

    fn write(&self, toml: &str) {
        std::fs::write(self.dir.join("bgrun.toml"), toml).unwrap();
    }
}

fn in_dir(b: &Bgrun, dir: &Path, args: &[&str]) -> std::process::Output {
    b.cmd(args).current_dir(dir).output().unwrap()
}

fn up(b: &Bgrun, p: &Project) -> Value {
    let out = in_dir(b, &p.dir, &["up"]);
    assert!(
        out.status.success(),
        "up failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pids(b: &Bgrun) -> std::collections::BTreeMap<String, i64> {
    String::from_utf8(b.run_raw(&["list"]).stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|j| j["pid"].is_i64() && matches!(j["state"].as_str(), Some("running" | "ready")))
        .map(|j| (j["name"].as_str().unwrap().to_string(), j["pid"].as_i64().unwrap()))
        .collect()
}

const THREE: &str = r#"
[project]
name = "shop"

[jobs.db]
cmd = "echo 'accepting connections'; exec sleep 60"
ready-when = "accepting connections"

[jobs.api]
cmd = "exec sleep 61"
after = "db"

[jobs.worker]
cmd = "exec sleep 62"
after = ["api"]
"#;

#[test]
fn up_converges_and_a_second_up_touches_nothing() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    let first = up(&b, &p);
    assert_eq!(first["ok"], true);
    let actions: Vec<&str> = first["jobs"].as_array().unwrap().iter().map(|j| j["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["create", "create", "create"]);
    let before = pids(&b);
    assert_eq!(before.len(), 3);
    let second = up(&b, &p);
    let actions: Vec<&str> = second["jobs"].as_array().unwrap().iter().map(|j| j["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["unchanged", "unchanged", "unchanged"]);
    assert_eq!(pids(&b), before);
    // Dependencies started first.
    let started =
        |job: &str| humantime::parse_rfc3339(b.status(&format!("shop/{job}"))["ready_at"].as_str().unwrap()).unwrap();
    assert!(started("db") <= started("api") && started("api") <= started("worker"));
}

#[test]
fn only_the_edited_job_is_replaced_and_in_place_edits_restart_nothing() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    up(&b, &p);
    let before = pids(&b);
    p.write(&THREE.replace("exec sleep 62", "exec sleep 63"));
    let plan: Value = serde_json::from_slice(&in_dir(&b, &p.dir, &["plan"]).stdout).unwrap();
    assert_eq!(plan["changes"][2], serde_json::json!({"job": "worker", "action": "replace", "fields": ["cmd"]}));
    assert_eq!(pids(&b), before, "plan changed something");
    up(&b, &p);
    let after = pids(&b);
    assert_eq!(after["db"], before["db"]);
    assert_eq!(after["api"], before["api"]);
    assert_ne!(after["worker"], before["worker"]);
    // A health setting is applied in place: same process, new generation observed.
    p.write(
        &THREE
            .replace("exec sleep 62", "exec sleep 63")
            .replace("after = \"db\"", "after = \"db\"\nhealth-check-port = 9\nhealth-interval = 60"),
    );
    let view = up(&b, &p);
    assert_eq!(view["jobs"][1]["action"], "update");
    assert_eq!(view["jobs"][1]["fields"], serde_json::json!(["health"]));
    assert_eq!(pids(&b), after);
    let st = b.status("shop/api");
    assert_eq!(st["generation"], st["observed_generation"]);
}

#[test]
fn a_job_removed_from_the_file_is_stopped_and_forgotten() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    up(&b, &p);
    let worker = pids(&b)["worker"] as i32;
    let without: String = THREE.split("[jobs.worker]").next().unwrap().to_string();
    p.write(&without);
    let view = up(&b, &p);
    assert_eq!(view["jobs"][2]["action"], "remove");
    assert!(!alive(worker));
    assert!(b.fails(&["status", "shop/worker"]).contains("no job"));
}

#[test]
fn a_broken_file_reports_every_problem_and_changes_nothing() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    up(&b, &p);
    let before = pids(&b);
    p.write(
        &THREE
            .replace("ready-when =", "ready-wen =")
            .replace("after = [\"api\"]", "after = [\"apii\"]\nbackoff = \"soon\""),
    );
    // Piped: the problems as JSON, every one with its line and column.
    let out = in_dir(&b, &p.dir, &["up"]);
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    let found: Vec<(i64, i64, &str)> = err["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_i64().unwrap(), p["column"].as_i64().unwrap(), p["message"].as_str().unwrap()))
        .collect();
    assert_eq!(found.len(), 3, "{err}");
    assert_eq!((found[0].0, found[0].1), (7, 1));
    assert!(found[0].2.contains("unknown key `ready-wen`"));
    assert_eq!(err["problems"][0]["hint"], "did you mean `ready-when`?");
    assert!(found[1].2.contains("no job `apii`"));
    assert!(found[2].2.contains("backoff"));
    // On a terminal: a miette report with file:line:col, the snippet and the hint.
    let text = b.on_terminal("up", Some(&p.dir), b"");
    assert!(text.contains("bgrun.toml:7:1: unknown key `ready-wen`"), "{text}");
    assert!(text.contains("ready-wen = \"accepting connections\""), "the snippet: {text}");
    assert!(text.contains("did you mean `ready-when`?"), "{text}");
    assert!(text.contains("3 problems; nothing was changed"), "{text}");
    assert_eq!(pids(&b), before);
}

#[test]
fn a_dependency_cycle_is_named() {
    let b = Bgrun::new(SECS(30));
    let p = Project::new(&b, "loop", "[jobs.a]\ncmd='true'\nafter='b'\n[jobs.b]\ncmd='true'\nafter='a'\n");
    let out = in_dir(&b, &p.dir, &["up", "--json"]);
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["problems"][0]["message"], "dependency cycle: a → b → a");
    assert_eq!(err["problems"][0]["line"], 3);
    assert!(b.run_raw(&["list"]).stdout.is_empty());
}

#[test]
fn down_stops_dependents_first() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    up(&b, &p);
    // A name that is not a job of the file is refused (exit 3, not found) and stops nothing.
    let typo = in_dir(&b, &p.dir, &["down", "wroker"]);
    assert_eq!(typo.status.code(), Some(3), "{}", String::from_utf8_lossy(&typo.stderr));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("no job \"wroker\""));
    assert_eq!(pids(&b).len(), 3, "a refused down stopped something");
    let out = in_dir(&b, &p.dir, &["down"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stopped"].as_array().unwrap().len(), 3);
    let event_at = |job: &str, kind: &str| -> String {
        let events = b.status(&format!("shop/{job}"))["events"].as_array().unwrap().clone();
        events.iter().rfind(|e| e["kind"] == kind).unwrap()["at"].as_str().unwrap().to_string()
    };
    let stop_at = |job: &str| event_at(job, "stop");
    let ended_at = |job: &str| event_at(job, "killed");
    assert!(ended_at("worker") <= stop_at("api"), "api was stopped before worker ended");
    assert!(ended_at("api") <= stop_at("db"), "db was stopped before api ended");
    assert!(pids(&b).is_empty());
}

#[test]
fn names_are_scoped_by_project() {
    let b = Bgrun::new(SECS(60));
    let one = Project::new(&b, "one", "[project]\nname = \"one\"\n[jobs.api]\ncmd = \"exec sleep 60\"\n");
    let two = Project::new(&b, "two", "[jobs.api]\ncmd = \"exec sleep 61\"\n");
    up(&b, &one);
    up(&b, &two);
    let err = b.fails(&["status", "api"]);
    assert!(err.contains("one/api") && err.contains("two/api"), "{err}");
    assert_eq!(b.status("one/api")["project"], "one");
    assert_eq!(b.status("two/api")["project"], "two", "the project is named after its directory");
    let listed = String::from_utf8(b.run_raw(&["list"]).stdout).unwrap();
    assert!(listed.contains("\"project\":\"one\"") && listed.contains("\"project\":\"two\""));
    // An `up` of one project never touches the other.
    one.write("[project]\nname = \"one\"\n");
    up(&b, &one);
    assert_eq!(b.state("two/api"), "ready");
}

#[test]
fn run_group_starts_named_jobs_with_their_dependencies() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    let out = in_dir(&b, &p.dir, &["run-group", "api"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["db", "api"]);
    assert!(jobs[0]["id"].is_string());
    // Each entry as `list` shows a job (the contract's shape), with what the group did.
    for key in ["workspace", "cmd", "started_at", "state", "pid", "action"] {
        assert!(jobs[0].get(key).is_some(), "run-group entry without {key}: {jobs}");
    }
    assert!(jobs[0]["cmd"].is_array());
    assert!(b.fails(&["status", "shop/worker"]).contains("no job"));
    assert!(in_dir(&b, &p.dir, &["run-group", "nope"]).status.code() != Some(0));
}

#[test]
fn dependents_restart_with_a_replaced_dependency_only_when_they_opt_in() {
    let b = Bgrun::new(SECS(60));
    let toml = "[jobs.db]\ncmd = \"exec sleep 60\"\n[jobs.follow]\ncmd = \"exec sleep 61\"\nafter = \"db\"\nrestart-with-dependencies = true\n[jobs.stay]\ncmd = \"exec sleep 62\"\nafter = \"db\"\n";
    let p = Project::new(&b, "deps", toml);
    up(&b, &p);
    let before = pids(&b);
    p.write(&toml.replace("sleep 60", "sleep 70"));
    up(&b, &p);
    wait_until("follow restarted", SECS(10), || {
        let now = pids(&b);
        (now.get("follow").is_some_and(|p| *p != before["follow"])).then_some(now)
    });
    let now = pids(&b);
    assert_ne!(now["db"], before["db"]);
    assert_eq!(now["stay"], before["stay"]);
}

/// `up --watch` running, its output lines readable as they come.
struct Watching {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

fn watch(b: &Bgrun, p: &Project) -> Watching {
    let mut child = b
        .cmd(&["up", "--watch", "--json"])
        .current_dir(&p.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let w = Watching { child, lines };
    // The first converge, then a line once the watch is on.
    let first = w.until("the watch to start", |l| l.contains("\"watching\""));
    assert!(first[0].contains("\"ok\":true"), "{first:?}");
    w
}

impl Watching {
    /// The lines printed until one satisfies `until` (that one last).
    fn until(&self, what: &str, until: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + SECS(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("waiting for {what}, watch printed only {seen:?} ({e})"));
            let done = until(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    fn next(&self, what: &str, until: impl Fn(&str) -> bool) -> String {
        self.until(what, until).pop().unwrap()
    }
}

fn stop(mut w: Watching) {
    signal(w.child.id() as i32, libc::SIGKILL);
    let _ = w.child.wait();
}

#[test]
fn watch_converges_on_save_keeps_the_last_good_state_and_never_revives_a_killed_job() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    let w = watch(&b, &p);
    let before = pids(&b);
    b.json(&["kill", "shop/db"]);
    // A broken save changes nothing.
    p.write("[jobs.api\n");
    // Then a good save with an edit elsewhere: only the worker is replaced, db stays killed.
    p.write(&THREE.replace("exec sleep 62", "exec sleep 64"));
    wait_until("worker replaced", SECS(20), || {
        pids(&b).get("worker").is_some_and(|p| *p != before["worker"]).then_some(())
    });
    assert_eq!(b.state("shop/db"), "killed");
    assert_eq!(pids(&b)["api"], before["api"]);
    stop(w);
}

#[test]
fn a_watch_glob_restarts_its_job() {
    let b = Bgrun::new(SECS(60));
    let toml =
        "[jobs.dev]\ncmd = \"exec sleep 60\"\nwatch = [\"src/**/*.rs\"]\n[jobs.other]\ncmd = \"exec sleep 61\"\n";
    let p = Project::new(&b, "dev", toml);
    std::fs::create_dir_all(p.dir.join("src")).unwrap();
    std::fs::create_dir_all(p.dir.join("target")).unwrap();
    let w = watch(&b, &p);
    let before = pids(&b);
    // Ignored paths and non-matching files do nothing; a matching file restarts `dev` only.
    std::fs::write(p.dir.join("target/x.rs"), "x").unwrap();
    std::fs::write(p.dir.join("src/notes.txt"), "x").unwrap();
    std::fs::write(p.dir.join("src/main.rs"), "fn main() {}").unwrap();
    wait_until("dev restarted", SECS(20), || pids(&b).get("dev").is_some_and(|p| *p != before["dev"]).then_some(()));
    assert_eq!(pids(&b)["other"], before["other"]);
    assert_eq!(b.status("dev/dev")["restart_count"], 0, "a watch restart is a new run, not a crash restart");
    stop(w);
}

#[test]
fn every_example_comes_up_and_goes_down() {
    let b = Bgrun::new(SECS(120));
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut ran = 0;
    for entry in std::fs::read_dir(examples).unwrap().flatten() {
        let src = entry.path().join("bgrun.toml");
        if !src.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let p = Project::new(&b, &name, &std::fs::read_to_string(&src).unwrap());
        let view = up(&b, &p);
        assert_eq!(view["ok"], true, "{name}: {view}");
        let down = in_dir(&b, &p.dir, &["down"]);
        assert!(down.status.success(), "{name}: {}", String::from_utf8_lossy(&down.stderr));
        // Each example stops the way its programs want: none needs the final SIGKILL.
        let list = String::from_utf8(b.run_raw(&["list"]).stdout).unwrap();
        for job in list.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|j| j["project"] == name) {
            assert!(!job["reason"].as_str().unwrap().contains("SIGKILL"), "{name}: {job}");
        }
        ran += 1;
    }
    assert!(ran >= 3);
    assert!(pids(&b).is_empty());
}

#[test]
fn run_by_name_uses_the_files_job_with_typed_flags_over_it() {
    let b = Bgrun::new(SECS(30));
    let p = Project::new(
        &b,
        "shop",
        "[jobs.api]\ncmd = \"echo $GREETING; exec sleep 60\"\nenv = { GREETING = \"from the file\" }\nworkspace = \"backend\"\n",
    );
    let out = in_dir(&b, &p.dir, &["run", "--name", "api", "--env", "EXTRA=1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["project"], "shop");
    assert_eq!(job["workspace"], "backend");
    assert_eq!(job["cmd"], serde_json::json!(["echo", "$GREETING;", "exec", "sleep", "60"]));
    wait_until("greeting", SECS(10), || (b.tail_text("shop/api", 1) == ["from the file"]).then_some(()));
    // Without a file job of that name, a command is still required.
    let err = String::from_utf8_lossy(&in_dir(&b, &p.dir, &["run", "--name", "other"]).stderr).into_owned();
    assert!(err.contains("give a command"), "{err}");
}

#[test]
fn up_fails_when_a_job_cannot_become_ready_and_no_wait_does_not_wait() {
    let b = Bgrun::new(SECS(30));
    let p = Project::new(
        &b,
        "bad",
        "[jobs.ok]\ncmd = \"exec sleep 60\"\n[jobs.bad]\ncmd = \"exit 3\"\nready-when = \"never\"\n[jobs.after-bad]\ncmd = \"exec sleep 60\"\nafter = \"bad\"\n",
    );
    let out = in_dir(&b, &p.dir, &["up"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let by_name = |n: &str| v["jobs"].as_array().unwrap().iter().find(|j| j["job"] == n).unwrap().clone();
    assert_eq!(by_name("ok")["ok"], true);
    assert_eq!(by_name("bad")["state"], "crashed");
    assert_eq!(by_name("after-bad")["reason"], "dependency bad failed (exit 3)");
    assert_eq!(by_name("after-bad")["state"], "crashed");
    // --no-wait answers once the edit is applied, before a slow job is ready.
    let slow =
        Project::new(&b, "slow", "[jobs.slow]\ncmd = \"sleep 5; echo ready; exec sleep 60\"\nready-when = \"ready\"\n");
    let out = in_dir(&b, &slow.dir, &["up", "--no-wait"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(v["jobs"][0]["state"], "ready");
}

#[test]
fn watch_replaces_a_job_when_its_env_file_changes() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "envy", "[jobs.app]\ncmd = \"echo $GREETING; exec sleep 60\"\nenv-file = \".env\"\n");
    std::fs::write(p.dir.join(".env"), "GREETING=first\n").unwrap();
    let w = watch(&b, &p);
    let before = pids(&b)["app"];
    std::fs::write(p.dir.join(".env"), "GREETING=second\n").unwrap();
    wait_until("app replaced", SECS(20), || pids(&b).get("app").is_some_and(|p| *p != before).then_some(()));
    wait_until("new value", SECS(10), || (b.tail_text("envy/app", 1) == ["second"]).then_some(()));
    stop(w);
}

/// A one-shot migration: the second run fails if `fail-next` exists in the project directory.
const MIGRATIONS: &str = r#"
[jobs.migrate]
cmd = "sleep 0.3; if [ -e fail-next ]; then echo failed; exit 3; fi; echo migrated"
oneshot = true

[jobs.app]
cmd = "echo serving; exec sleep 60"
after = { migrate = "completed" }
ready-when = "serving"
"#;

fn event_at(b: &Bgrun, job: &str, kind: &str) -> String {
    let events = b.status(job)["events"].as_array().unwrap().clone();
    events.iter().rfind(|e| e["kind"] == kind).unwrap_or_else(|| panic!("no {kind} event for {job}"))["at"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_one_shot_finishes_before_its_dependent_starts_and_its_failure_fails_it() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "mig", MIGRATIONS);
    let v = up(&b, &p);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(b.state("migrate"), "exited");
    assert!(event_at(&b, "migrate", "exited") <= event_at(&b, "app", "spawned"), "app started before migrate ended");
    // down then up: the previous run's exit 0 must not release app before the new run completes.
    assert!(in_dir(&b, &p.dir, &["down"]).status.success());
    std::fs::write(p.dir.join("fail-next"), "").unwrap();
    let out = in_dir(&b, &p.dir, &["up"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = v["jobs"].as_array().unwrap().iter().find(|j| j["job"] == "app").unwrap().clone();
    assert_eq!(app["reason"], "dependency migrate failed (exit 3)", "{v}");
    assert!(b.status("app")["pid"].is_null());
}

#[test]
fn up_no_wait_right_after_down_reports_the_new_runs_not_the_old_kills() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "shop", THREE);
    up(&b, &p);
    assert!(in_dir(&b, &p.dir, &["down"]).status.success());
    let out = in_dir(&b, &p.dir, &["up", "--no-wait"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v}");
    assert_eq!(v["ok"], true);
    assert!(v["jobs"].as_array().unwrap().iter().all(|j| j["ok"] == true), "{v}");
}

const WATCHED: &str = "[jobs.app]\ncmd = \"cat app.py; exec sleep 60\"\nwatch = [\"app.py\"]\n";

fn converged(line: &str) -> bool {
    line.contains("\"ok\":true")
}

#[test]
fn a_watched_file_read_by_its_job_restarts_it_once_per_save() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "py", WATCHED);
    std::fs::write(p.dir.join("app.py"), "print('v1')\n").unwrap();
    let w = watch(&b, &p);
    std::fs::write(p.dir.join("app.py"), "print('v2')\n").unwrap();
    w.next("a restart", |l| l.contains("restarted"));
    // The new run reads app.py as it starts: that read must not count as a change.
    wait_until("the new run to read app.py", SECS(10), || (b.tail_text("py/app", 1) == ["print('v2')"]).then_some(()));
    // A save of the project file is the marker: every event before it has been dealt with by then.
    p.write(&format!("{WATCHED}grace = \"6s\"\n"));
    let between = w.until("the marker save", converged);
    assert!(!between.iter().any(|l| l.contains("restarted")), "restarted again by a read: {between:?}");
    stop(w);
}

#[test]
fn up_watch_converges_once_per_save_and_holds_a_save_without_jobs() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "py", WATCHED);
    std::fs::write(p.dir.join("app.py"), "print('v1')\n").unwrap();
    let w = watch(&b, &p);
    p.write(&format!("{WATCHED}grace = \"6s\"\n"));
    w.next("the save", converged);
    // The marker: a watched file's change, dealt with after anything the converge caused.
    std::fs::write(p.dir.join("app.py"), "print('v2')\n").unwrap();
    let between = w.until("the marker restart", |l| l.contains("restarted"));
    assert!(!between.iter().any(|l| converged(l)), "converged again without a save: {between:?}");
    // An empty save (an editor between truncating and writing) is held, not applied.
    let before = pids(&b);
    p.write("");
    let held = w.next("the empty save", |l| l.contains("held"));
    assert!(held.contains("no jobs"), "{held}");
    assert_eq!(pids(&b), before, "an empty save stopped jobs");
    stop(w);
}

#[test]
fn env_files_are_read_as_dotenv_files() {
    let b = Bgrun::new(SECS(30));
    let p = Project::new(
        &b,
        "mail",
        "[jobs.mailer]\ncmd = \"echo \\\"$MAIL_FROM_NAME|$NOTE\\\"; exec sleep 60\"\nenv-file = \".env\"\n",
    );
    // Laravel's .env.example style: export, quotes, inline comments, ${VAR} from a line above.
    std::fs::write(
        p.dir.join(".env"),
        "export APP_NAME=\"Shop\"\nMAIL_FROM_NAME=\"${APP_NAME} mailer\"\nNOTE=kept # not this\n",
    )
    .unwrap();
    up(&b, &p);
    wait_until("the job's output", SECS(10), || (b.tail_text("mail/mailer", 1) == ["Shop mailer|kept"]).then_some(()));
}

const CHATTY: &str = r#"
[jobs.a]
cmd = "echo a1; sleep 0.3; echo a2; sleep 0.3; echo a3"

[jobs.b]
cmd = "sleep 0.15; echo b1; sleep 0.3; echo b2"
"#;

fn logs(b: &Bgrun, p: &Project, args: &[&str]) -> Vec<(String, String)> {
    let out = in_dir(b, &p.dir, &[&["logs"][..], args].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["job"].as_str().unwrap().to_string(), v["content"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn logs_merges_the_projects_jobs_in_time_order_and_follows_them_to_their_end() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "chat", CHATTY);
    // Followed from the start, until both jobs have finished.
    in_dir(&b, &p.dir, &["up", "--no-wait"]);
    let followed = logs(&b, &p, &["--follow"]);
    let contents: Vec<&str> = followed.iter().map(|(_, c)| c.as_str()).collect();
    for line in ["a1", "a2", "a3", "b1", "b2"] {
        assert!(contents.contains(&line), "{line} missing: {followed:?}");
    }
    // Read afterwards: one view, in the order the lines were written, each with its job.
    let all = logs(&b, &p, &[]);
    let expected: Vec<(String, String)> = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")]
        .iter()
        .map(|(j, c)| (j.to_string(), c.to_string()))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(logs(&b, &p, &["b"]), expected.iter().filter(|(j, _)| j == "b").cloned().collect::<Vec<_>>());
    assert_eq!(logs(&b, &p, &["--since", "1h"]).len(), 5);
}

#[test]
fn a_disabled_job_is_left_alone_unless_named_or_needed() {
    let b = Bgrun::new(SECS(60));
    let toml = "[jobs.tools]\ncmd = \"exec sleep 60\"\ndisabled = true\n[jobs.app]\ncmd = \"exec sleep 61\"\n\
                [jobs.db]\ncmd = \"exec sleep 62\"\ndisabled = true\n[jobs.api]\ncmd = \"exec sleep 63\"\nafter = \"db\"\n";
    let p = Project::new(&b, "dis", toml);
    up(&b, &p);
    let running = pids(&b);
    assert!(running.contains_key("app") && running.contains_key("api"), "{running:?}");
    assert!(running.contains_key("db"), "a disabled job an enabled one needs is started: {running:?}");
    assert!(!running.contains_key("tools"), "{running:?}");
    // Named, it runs; another plain `up` leaves it running and touches nothing else.
    assert!(in_dir(&b, &p.dir, &["up", "tools"]).status.success());
    assert!(pids(&b).contains_key("tools"));
    let before = pids(&b);
    up(&b, &p);
    assert_eq!(pids(&b), before);
}

fn in_dir_json(b: &Bgrun, dir: &Path, args: &[&str]) -> Value {
    let out = in_dir(b, dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_named_environment_is_laid_over_the_file_and_env_says_where_each_variable_came_from() {
    let b = Bgrun::new(SECS(30));
    let toml = r#"
env-file = ".env"
[env]
NODE_ENV = "development"
[environments.production]
NODE_ENV = "production"
[jobs.api]
cmd = "echo \"$NODE_ENV $PORT $FROM_FILE\"; exec sleep 60"
env = { PORT = "3000" }
[jobs.api.environments.production]
PORT = "80"
"#;
    let p = Project::new(&b, "envs", toml);
    std::fs::write(p.dir.join(".env"), "FROM_FILE=yes\n").unwrap();
    up(&b, &p);
    wait_until("the plain output", SECS(10), || (b.tail_text("envs/api", 1) == ["development 3000 yes"]).then_some(()));
    // Selecting the environment changes the declared environment: the job is replaced.
    let view = in_dir_json(&b, &p.dir, &["up", "--env", "production"]);
    assert_eq!(view["jobs"][0]["action"], "replace", "{view}");
    wait_until("the production output", SECS(10), || {
        (b.tail_text("envs/api", 1) == ["production 80 yes"]).then_some(())
    });
    let env = b.json(&["env", "envs/api"]);
    let source =
        |name: &str| env["vars"].as_array().unwrap().iter().find(|v| v["name"] == name).map(|v| v["source"].clone());
    assert_eq!(source("NODE_ENV"), Some("[environments.production]".into()));
    assert_eq!(source("PORT"), Some("[jobs.api.environments.production]".into()));
    assert_eq!(source("FROM_FILE"), Some("env-file .env".into()));
    assert_eq!(source("PATH"), Some("inherited".into()), "the caller's environment is shown as such");
    let declared = b.json(&["env", "envs/api", "--declared"]);
    assert!(declared["vars"].as_array().unwrap().iter().all(|v| v["source"] != "inherited"), "{declared}");
    // An environment the file does not have is refused, and nothing changes.
    let pid = b.pid("envs/api");
    let out = in_dir(&b, &p.dir, &["up", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no environment `staging`"));
    assert_eq!(b.pid("envs/api"), pid);
}

fn replicas_file(n: u32) -> String {
    format!(
        "[jobs.api]\ncmd = \"echo $BGRUN_REPLICA_NUMBER $PORT; exec sleep 60\"\nreplicas = {n}\nallocate-port = \"PORT\"\n"
    )
}

#[test]
fn replicas_scale_by_the_difference_and_are_addressed_one_by_one_or_together() {
    let b = Bgrun::new(SECS(60));
    let p = Project::new(&b, "rep", &replicas_file(2));
    up(&b, &p);
    let two = pids(&b);
    assert_eq!(two.keys().collect::<Vec<_>>(), ["api.1", "api.2"]);
    let ports: Vec<String> = (1..=2)
        .map(|i| wait_until("a replica's output", SECS(10), || b.tail_text(&format!("rep/api.{i}"), 1).pop()))
        .collect();
    assert!(ports[0].starts_with("1 ") && ports[1].starts_with("2 "), "{ports:?}");
    assert_ne!(ports[0][2..], ports[1][2..], "each replica has a port of its own: {ports:?}");

    p.write(&replicas_file(3));
    let view = up(&b, &p);
    let actions: Vec<(String, String)> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job"].as_str().unwrap().into(), j["action"].as_str().unwrap().into()))
        .collect();
    assert!(actions.contains(&("api.3".into(), "create".into())), "{actions:?}");
    let three = pids(&b);
    assert_eq!((three["api.1"], three["api.2"]), (two["api.1"], two["api.2"]), "the first two untouched");

    p.write(&replicas_file(1));
    up(&b, &p);
    wait_until("the extra replicas to go", SECS(10), || (pids(&b).len() == 1).then_some(()));
    assert_eq!(pids(&b)["api.1"], two["api.1"]);

    // One replica by name; all of them by the job's name.
    p.write(&replicas_file(2));
    up(&b, &p);
    let err = b.fails(&["status", "rep/api"]);
    assert!(err.contains("is 2 replicas") && err.contains("api.1"), "{err}");
    let killed = b.json(&["kill", "rep/api"]);
    assert_eq!(killed["killed"].as_array().unwrap().len(), 2, "{killed}");
    assert!(pids(&b).is_empty());
}

#[test]
fn cron_restarts_a_server_and_reruns_a_oneshot_on_its_schedule() {
    let b = Bgrun::new(SECS(60));
    let toml = "[jobs.server]\ncmd = \"exec sleep 60\"\ncron = \"* * * * * *\"\n\
                [jobs.tick]\ncmd = \"echo tick\"\noneshot = true\ncron = \"* * * * * *\"\n";
    let p = Project::new(&b, "cron", toml);
    up(&b, &p);
    let first = b.pid("cron/server");
    // Every second: the server gets a new process, and the one-shot runs again.
    // Between two runs the job has no pid: poll the status, which may say so.
    let pid_now = || b.status("cron/server")["pid"].as_i64();
    wait_until("a scheduled restart", SECS(10), || pid_now().filter(|p| *p != i64::from(first)).map(|_| ()));
    wait_until("three scheduled runs", SECS(10), || (b.tail_text("cron/tick", 10).len() >= 3).then_some(()));
    let events = b.status("cron/server")["events"].clone();
    let cron = events.as_array().unwrap().iter().find(|e| e["kind"] == "cron").cloned();
    assert_eq!(cron.map(|e| e["detail"].clone()), Some("cron * * * * * *: new run".into()), "{events}");
}

#[test]
fn the_copies_of_a_job_restart_one_after_the_other() {
    let b = Bgrun::new(SECS(60));
    let toml = "[jobs.api]\ncmd = \"sleep 0.2; echo serving; exec sleep 60\"\nready-when = \"serving\"\nreplicas = 3\n";
    let p = Project::new(&b, "roll", toml);
    up(&b, &p);
    let before = pids(&b);
    b.json(&["restart", "roll/api"]);
    // The answer comes once the last copy has a process; each is ready in turn.
    wait_until("every copy ready", SECS(20), || {
        (1..=3).all(|i| b.state(&format!("roll/api.{i}")) == "ready").then_some(())
    });
    let after = pids(&b);
    for name in ["api.1", "api.2", "api.3"] {
        assert_ne!(before[name], after[name], "{name} restarted");
    }
    // The last event of a kind, by its time (RFC 3339 times compare as text).
    let last = |i: u32, kind: &str| -> String {
        let events = b.status(&format!("roll/api.{i}"))["events"].clone();
        let found = events.as_array().unwrap().iter().rev().find(|e| e["kind"] == kind).cloned();
        found.map(|e| e["at"].as_str().unwrap().to_string()).unwrap_or_else(|| panic!("no {kind} event: {events}"))
    };
    for i in 2..=3 {
        assert!(last(i, "stop") >= last(i - 1, "ready"), "api.{i} stopped before api.{} was ready again", i - 1);
    }
}

#[test]
fn a_settings_file_becomes_environment_and_editing_it_replaces_the_job() {
    let b = Bgrun::new(SECS(30));
    let toml = "[jobs.api]\ncmd = \"echo port=$SERVER_PORT hosts=$SERVER_HOSTS; exec sleep 60\"\nconfig = \"production.toml\"\n";
    let p = Project::new(&b, "cfg", toml);
    std::fs::write(p.dir.join("production.toml"), "[server]\nport = 3000\nhosts = [\"a\", \"b\"]\n").unwrap();
    up(&b, &p);
    wait_until("the settings", SECS(10), || (b.tail_text("cfg/api", 1) == ["port=3000 hosts=a,b"]).then_some(()));
    std::fs::write(p.dir.join("production.toml"), "[server]\nport = 3001\nhosts = [\"a\"]\n").unwrap();
    let view = up(&b, &p);
    assert_eq!(view["jobs"][0]["action"], "replace", "{view}");
    wait_until("the new settings", SECS(10), || (b.tail_text("cfg/api", 1) == ["port=3001 hosts=a"]).then_some(()));
    let env = b.json(&["env", "cfg/api", "--declared"]);
    assert_eq!(env["vars"][2]["source"], "config production.toml", "{env}");
}
