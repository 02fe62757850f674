//! process-compose files: each process of `processes` a job, its command run by the project's
//! shell (bash -c unless `shell` says otherwise), its probes, restart and shutdown settings
//! translated, and what bgrun cannot express reported.

use super::Context;
use super::convert::{self, job_name, text};
use super::draft::{Draft, Job};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Top-level keys that need nothing from bgrun.
const QUIET_TOP: &[&str] = &["version", "is_strict", "is_tui_disabled", "ordered_shutdown"];

pub fn translate(config: &Value, cx: &Context) -> Result<Draft> {
    let mut draft = Draft::new(&cx.file);
    let Some(top) = config.as_object() else {
        return Err(Error::bad_input(format!("{} is not a process-compose file: expected a mapping", cx.file)));
    };
    let Some(Value::Object(processes)) = top.get("processes") else {
        return Err(Error::bad_input(format!("{} has no `processes`", cx.file)));
    };
    let mut shell = vec!["bash".to_string(), "-c".to_string()];
    for (key, value) in top {
        match key.as_str() {
            "processes" => {}
            k if QUIET_TOP.contains(&k) || k.starts_with("x-") => {}
            "name" => match value.as_str() {
                Some(name) if crate::spec::validate_name(name).is_ok() => draft.project = Some(name.to_string()),
                _ => draft.unsupported(None, key, "not a plain name (letters, digits, '.', '_' and '-')"),
            },
            "environment" => {
                for (k, v) in env_list(value, &mut draft, None) {
                    draft.env.insert(k, v);
                }
            }
            "shell" => {
                let part = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
                if let Some(command) = part("shell_command") {
                    shell = vec![command, part("shell_argument").unwrap_or_else(|| "-c".into())];
                }
            }
            "log_location" | "log_level" | "log_length" | "log_format" | "log_configuration" => {
                draft.unsupported(None, key, "process-compose's own log settings; bgrun keeps a log per job")
            }
            "vars" => {
                draft.unsupported(None, key, "template variables are not expanded: commands keep their {{ }} text")
            }
            "env_cmds" => draft.unsupported(None, key, "variables from commands: run them in the job's cmd instead"),
            "extends" => draft.unsupported(None, key, "the extended file is not merged: import it on its own"),
            "disable_env_expansion" if value == &Value::Bool(false) => {}
            "disable_env_expansion" => {
                draft.unsupported(None, key, "bgrun's shell expands $VARIABLES in commands when they run")
            }
            _ => draft.unsupported(None, key, "not a process-compose setting bgrun knows"),
        }
    }
    let mut taken = BTreeSet::new();
    let names: BTreeMap<&str, String> = processes.keys().map(|k| (k.as_str(), job_name(k, &mut taken).0)).collect();
    for (source, process) in processes {
        let Value::Object(process) = process else {
            return Err(Error::bad_input(format!("{}: process {source:?} is not a mapping", cx.file)));
        };
        let job = Process::new(source, &names, cx, &shell, &mut draft).translate(process);
        draft.jobs.push(job);
    }
    if draft.jobs.is_empty() {
        return Err(Error::bad_input(format!("{} has no processes", cx.file)));
    }
    if cx.dir.join(".env").is_file() {
        let note = "process-compose reads the .env beside it for every process";
        draft.env_file = Some((convert::rebase(&cx.base, ".env"), note.into()));
    }
    Ok(draft)
}

/// `["A=1", "B=2"]` as variables; entries without `=` reported.
fn env_list(value: &Value, draft: &mut Draft, job: Option<&str>) -> Vec<(String, String)> {
    let Some(items) = value.as_array() else {
        draft.unsupported(job, "environment", "expected a list of KEY=VALUE");
        return vec![];
    };
    let mut vars = Vec::new();
    for item in items {
        match item.as_str().and_then(|s| s.split_once('=')) {
            Some((k, v)) => vars.push((k.to_string(), v.to_string())),
            None => draft.unsupported(job, "environment", format!("{item} is not KEY=VALUE")),
        }
    }
    vars
}

struct Process<'a> {
    source: &'a str,
    names: &'a BTreeMap<&'a str, String>,
    cx: &'a Context,
    shell: &'a [String],
    draft: &'a mut Draft,
    job: Job,
    /// The job's working directory, relative to the file's (where process-compose resolves it).
    cwd: String,
}

impl<'a> Process<'a> {
    fn new(
        source: &'a str,
        names: &'a BTreeMap<&'a str, String>,
        cx: &'a Context,
        shell: &'a [String],
        draft: &'a mut Draft,
    ) -> Process<'a> {
        let mut job = Job::new(names[source].clone(), format!("{}, process {source:?}", cx.file));
        if names[source] != source {
            job.notes
                .push(format!("named {source:?} in the source; bgrun names are letters, digits, '.', '_' and '-'"));
        }
        Process { source, names, cx, shell, draft, job, cwd: ".".into() }
    }

    fn unsupported(&mut self, key: &str, reason: impl Into<String>) {
        self.draft.unsupported(Some(self.source), key, reason);
    }

    fn translate(mut self, process: &Map<String, Value>) -> Job {
        if let Some(Value::String(dir)) = process.get("working_dir") {
            self.cwd = dir.clone();
        }
        if process.contains_key("working_dir") || !self.cx.base.as_os_str().is_empty() {
            self.job.set("cwd", convert::rebase(&self.cx.base, &self.cwd));
        }
        for (key, value) in process {
            self.key(key, value, process);
        }
        if !self.job.has("cmd") {
            self.unsupported("command", "the process has no command or entrypoint; its job runs `true`");
            self.job.set("cmd", "true");
        }
        self.job
    }

    fn key(&mut self, key: &str, value: &Value, process: &Map<String, Value>) {
        let flag = value.as_bool() == Some(true);
        match key {
            "working_dir" | "name" => {}
            k if k.starts_with("x-") => {}
            "command" => match value.as_str() {
                Some(command) => {
                    let argv = self.shell.iter().map(String::as_str).chain([command]);
                    self.job.set("cmd", toml_edit::Value::from_iter(argv));
                }
                None => self.unsupported(key, "expected a command line"),
            },
            "entrypoint" if process.contains_key("command") => {
                self.unsupported(key, "process-compose runs `command` when both are set")
            }
            "entrypoint" => match value.as_array().map(|a| a.iter().map(text).collect::<Option<Vec<_>>>()) {
                Some(Some(argv)) if !argv.is_empty() => self.job.set("cmd", toml_edit::Value::from_iter(argv)),
                _ => self.unsupported(key, "expected a list of words"),
            },
            "environment" => {
                for (k, v) in env_list(value, self.draft, Some(self.source)) {
                    self.job.env.insert(k, v);
                }
            }
            "env_file" => match value.as_str() {
                Some(file) => self.job.set("env-file", convert::rebase(&self.cx.base, file)),
                None => self.unsupported(key, "expected a file name"),
            },
            "depends_on" => self.depends_on(value),
            "readiness_probe" => self.probe(key, value, true),
            "liveness_probe" => self.probe(key, value, false),
            "ready_log_line" => match value.as_str() {
                Some(line) => self.job.set("ready-when", line),
                None => self.unsupported(key, "expected a line of text"),
            },
            "availability" => self.availability(value),
            "shutdown" => self.shutdown(value),
            "is_daemon" if flag => self.job.set("daemonizes", true),
            "is_tty" if flag => self.job.set("pty", true),
            "disabled" if flag => self.job.set("disabled", true),
            "is_daemon"
            | "is_tty"
            | "disabled"
            | "is_dotenv_disabled"
            | "is_template_disabled"
            | "is_foreground"
            | "is_interactive"
            | "is_elevated"
            | "truncate_log"
            | "disable_ansi_colors"
                if value.as_bool() == Some(false) => {}
            "is_disabled" => match value.as_str().map(str::trim) {
                Some("true") => self.job.set("disabled", true),
                Some("false") => {}
                _ => {
                    self.unsupported(key, "a template deciding it when process-compose starts; set `disabled` by hand")
                }
            },
            "replicas" => match value.as_u64() {
                Some(n) if n > 1 => self.job.approx(
                    "replicas",
                    n as i64,
                    "each replica is a job of its own (`<job>.1`, `<job>.2`…, BGRUN_REPLICA counting from 0); \
                     process-compose named them <name>-0, <name>-1… and set PC_REPLICA_NUM",
                ),
                Some(_) => {}
                None => self.unsupported(key, "expected a number"),
            },
            "namespace" => {
                let spaces: Option<Vec<&str>> = match value {
                    Value::String(s) => Some(vec![s.as_str()]),
                    Value::Array(items) => items.iter().map(Value::as_str).collect(),
                    _ => None,
                };
                match spaces.as_deref() {
                    Some([one]) => self.job.set("workspace", *one),
                    _ => self.unsupported(key, "a bgrun job has one workspace"),
                }
            }
            "log_location" => match value.as_str() {
                // process-compose resolves it from its own directory, bgrun from the job's cwd.
                Some(file) => self.job.set("log", convert::relative(&self.cwd, file)),
                None => self.unsupported(key, "expected a file name"),
            },
            "description" => match value.as_str() {
                Some(text) => self.job.notes.push(text.to_string()),
                None => self.unsupported(key, "expected text"),
            },
            "schedule" => self.schedule(value),
            "is_dotenv_disabled" => self.unsupported(key, "bgrun's top-level env-file applies to every job"),
            "is_template_disabled" => {}
            "is_foreground" => self.unsupported(key, "bgrun has no foreground process; `bgrun attach` a pty job"),
            "is_interactive" => self.unsupported(key, "use `pty = true` and `bgrun attach`"),
            "is_elevated" => self.unsupported(key, "bgrun runs jobs as the user who runs it"),
            "truncate_log" => self.unsupported(key, "bgrun's log keeps earlier runs (bounded by log-max-size)"),
            "disable_ansi_colors" => self.unsupported(key, "`bgrun tail --strip-ansi` strips colours when reading"),
            "vars" => self.unsupported(key, "template variables are not expanded: commands keep their {{ }} text"),
            "launch_timeout_seconds" => self.unsupported(key, "bgrun follows a daemonizing program for up to 5 s"),
            "log_configuration" => self.unsupported(key, "bgrun's log rotation is log-max-size and log-max-files"),
            "watch" => self.unsupported(key, "write its paths as `watch` globs (and `watch-ignore`) by hand"),
            "success_exit_codes" => {
                self.unsupported(key, "bgrun counts exit 0 as success; stop-exit-codes only stops restarts")
            }
            "monitor_for" | "monitor_silence_threshold" => {
                self.unsupported(key, "bgrun does not watch a job's output for activity")
            }
            "mcp" => self.unsupported(key, "bgrun does not serve processes over MCP"),
            "extends" => self.unsupported(key, "the extended process is not merged: copy its settings"),
            _ => self.unsupported(key, "not a process-compose setting bgrun knows"),
        }
    }

    fn depends_on(&mut self, value: &Value) {
        let Some(deps) = value.as_object() else {
            return self.unsupported("depends_on", "expected a mapping of process: {condition}");
        };
        let mut after = toml_edit::InlineTable::new();
        let mut approximate = false;
        for (dep, how) in deps {
            let condition = how.get("condition").and_then(Value::as_str).unwrap_or("process_completed");
            let condition = match condition {
                "process_started" => "started",
                "process_healthy" | "process_log_ready" => "ready",
                "process_completed_successfully" => "completed",
                "process_completed" => {
                    approximate = true;
                    "ready-or-ended"
                }
                other => {
                    self.unsupported(
                        "depends_on",
                        format!("{dep}: condition {other:?} is not one process-compose has"),
                    );
                    continue;
                }
            };
            let name = self.names.get(dep.as_str()).cloned().unwrap_or_else(|| dep.clone());
            after.insert(&name, condition.into());
        }
        if after.is_empty() {
            return;
        }
        if approximate {
            self.job.approx(
                "after",
                after,
                "process_completed waited for the process to end, however it ended; ready-or-ended also \
                 lets this job start once that one is ready",
            );
        } else {
            self.job.set("after", after);
        }
    }

    /// A readiness probe becomes `ready-when-*`, a liveness probe `health-check-*` with its timing.
    fn probe(&mut self, key: &str, probe: &Value, readiness: bool) {
        let Some(probe) = probe.as_object() else { return self.unsupported(key, "expected a mapping") };
        let number = |k: &str| probe.get(k).and_then(Value::as_u64);
        let (exec_key, url_key) =
            if readiness { ("ready-when-exec", "ready-when-url") } else { ("health-check-exec", "health-check-url") };
        for (k, v) in probe {
            match k.as_str() {
                "exec" => match v.get("command").and_then(Value::as_str) {
                    Some(command) => {
                        self.job.set(exec_key, command);
                        if let Some(dir) = v.get("working_dir").and_then(Value::as_str)
                            && dir != self.cwd
                        {
                            self.job.add_note(
                                exec_key,
                                &format!("process-compose ran it in {dir}; bgrun runs it in the job's cwd"),
                            );
                        }
                    }
                    None => self.unsupported(key, "exec has no command"),
                },
                "http_get" => match url(v) {
                    Ok(url) => self.job.set(url_key, url),
                    Err(e) => self.unsupported(key, e),
                },
                "initial_delay_seconds" | "period_seconds" | "timeout_seconds" | "failure_threshold" => {}
                "success_threshold" if v.as_u64().is_none_or(|n| n <= 1) => {}
                "success_threshold" => self.unsupported(key, "bgrun counts one success"),
                other => self.unsupported(key, format!("{other}: not a probe setting bgrun knows")),
            }
        }
        if readiness {
            let timing = ["initial_delay_seconds", "period_seconds", "failure_threshold"];
            if timing.iter().any(|k| probe.contains_key(*k)) {
                let total = number("initial_delay_seconds").unwrap_or(0)
                    + number("period_seconds").unwrap_or(10) * number("failure_threshold").unwrap_or(3);
                self.job.approx(
                    "ready-timeout",
                    convert::seconds(total),
                    "process-compose gave up after failure_threshold failed probes, period_seconds apart (after \
                     initial_delay_seconds); bgrun probes every half second until ready-timeout",
                );
            }
            if let Some(t) = number("timeout_seconds") {
                self.unsupported(
                    key,
                    format!("timeout_seconds {t}: bgrun gives readiness probes no timeout of their own"),
                );
            }
            return;
        }
        if let Some(s) = number("period_seconds") {
            self.job.set("health-interval", convert::seconds(s));
        }
        if let Some(s) = number("timeout_seconds") {
            self.job.set("health-timeout", convert::seconds(s));
        }
        if let Some(n) = number("failure_threshold") {
            self.job.set("health-threshold", n as i64);
        }
        if let Some(s) = number("initial_delay_seconds") {
            self.job.approx(
                "health-start-period",
                convert::seconds(s),
                "process-compose counted it from the start, bgrun from when the job became ready",
            );
        }
    }

    fn availability(&mut self, value: &Value) {
        let Some(a) = value.as_object() else { return self.unsupported("availability", "expected a mapping") };
        for (k, v) in a {
            match (k.as_str(), v) {
                ("restart", Value::String(policy)) => match policy.as_str() {
                    "always" => self.job.set("restart", "always"),
                    "on_failure" => self.job.set("restart", "on-crash"),
                    "no" => {}
                    "exit_on_failure" => self.unsupported(
                        "availability.restart",
                        "exit_on_failure shut the whole project down when this process failed; bgrun stops nothing else",
                    ),
                    other => self.unsupported("availability.restart", format!("{other:?} is not a restart policy")),
                },
                ("backoff_seconds", v) if v.as_u64().is_some() => {
                    self.job.set("restart-delay", convert::seconds(v.as_u64().unwrap_or(1).max(1)))
                }
                ("max_restarts", v) if v.as_u64() == Some(0) => {}
                ("max_restarts", v) if v.as_u64().is_some() => self.job.approx(
                    "max-restarts",
                    v.as_u64().unwrap_or_default() as i64,
                    "process-compose counted every restart; bgrun counts crashes in a row, each within min-uptime of its start",
                ),
                ("exit_on_end" | "exit_on_skipped", Value::Bool(false)) => {}
                ("exit_on_end", _) => {
                    self.unsupported("availability.exit_on_end", "bgrun stops nothing else when a job ends")
                }
                ("exit_on_skipped", _) => {
                    self.unsupported("availability.exit_on_skipped", "bgrun stops nothing else when a job is skipped")
                }
                (other, _) => self.unsupported(&format!("availability.{other}"), "not a setting bgrun knows"),
            }
        }
        let restarts = self.job.has("restart");
        let limited = a.get("max_restarts").and_then(Value::as_u64).is_some_and(|n| n > 0);
        if restarts && !limited {
            self.job.add_note(
                "restart",
                "process-compose restarted without limit; bgrun gives up after max-restarts (10) quick crashes in a row",
            );
        }
    }

    fn shutdown(&mut self, value: &Value) {
        let Some(s) = value.as_object() else { return self.unsupported("shutdown", "expected a mapping") };
        for (k, v) in s {
            match (k.as_str(), v) {
                ("command", Value::String(command)) => self.job.set("stop-command", command.as_str()),
                ("signal", v) => match v.as_i64().and_then(convert::signal_name) {
                    Some(name) => self.job.set("stop-signal", name),
                    None => self.unsupported("shutdown.signal", format!("{v} is not a signal number")),
                },
                ("timeout_seconds", v) if v.as_u64().is_some() => {
                    self.job.set("grace", convert::seconds(v.as_u64().unwrap_or_default()))
                }
                ("parent_only", Value::Bool(false)) => {}
                ("parent_only", Value::Bool(true)) => self.job.approx(
                    "kill-mode",
                    "main",
                    "the stop signal reaches only the main process; bgrun still kills what is left after the grace",
                ),
                ("send_keys", _) => self.unsupported(
                    "shutdown.send_keys",
                    "bgrun stops with a signal or a stop-command; `bgrun send` types into a job",
                ),
                (other, _) => self.unsupported(&format!("shutdown.{other}"), "not a setting bgrun knows"),
            }
        }
    }

    fn schedule(&mut self, value: &Value) {
        match value.get("cron").and_then(Value::as_str) {
            Some(cron) => {
                self.job.set("cron", cron);
                self.job.approx(
                    "oneshot",
                    true,
                    "a scheduled process: a oneshot with cron runs at each cron time, and also when `bgrun up` \
                     starts it (process-compose waited for the first time unless run_on_start)",
                );
            }
            None => self.unsupported("schedule", "only cron schedules are carried over (as `cron`)"),
        }
        for key in value.as_object().into_iter().flat_map(|o| o.keys()) {
            if !matches!(key.as_str(), "cron" | "run_on_start") {
                self.unsupported(&format!("schedule.{key}"), "bgrun schedules by cron expression alone");
            }
        }
    }
}

/// A probe's `http_get` as a URL: scheme, host (default 127.0.0.1), port and path, as process-compose
/// puts them together.
fn url(http: &Value) -> std::result::Result<String, String> {
    let part = |k: &str| http.get(k).and_then(text).filter(|s| !s.trim().is_empty());
    if http.get("headers").is_some_and(|h| h.as_object().is_some_and(|o| !o.is_empty())) {
        return Err("http_get headers: bgrun's URL checks send none".into());
    }
    if let Some(code) = http.get("status_code").and_then(Value::as_u64)
        && !(200..300).contains(&code)
    {
        return Err(format!("http_get status_code {code}: bgrun's URL checks want a 2xx answer"));
    }
    let scheme = part("scheme").unwrap_or_else(|| "http".into());
    let host = part("host").unwrap_or_else(|| "127.0.0.1".into());
    let path = part("path").unwrap_or_else(|| "/".into());
    let port = part("port").or_else(|| part("num_port"));
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    })
}

#[cfg(test)]
mod tests;
