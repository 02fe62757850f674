//! PM2 ecosystem files, whatever their form (JSON, YAML, or what a JavaScript file exports): the
//! apps as one `serde_json::Value`, translated key by key as [`pm2_keys::RULES`] says.

use super::Context;
use super::convert::{self, text};
use super::draft::{Draft, Job};
use super::pm2_keys::{self, ENV_PREFIX, Quiet, Read, Rule};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What PM2 runs a script with when no interpreter is given, by extension. Files of other
/// extensions (and none: `npm`, a binary) run directly.
const INTERPRETERS: &[(&str, &str)] = &[
    (".js", "node"),
    (".cjs", "node"),
    (".mjs", "node"),
    // PM2 prefers `python` where there is one; python3 is what every current system has.
    (".py", "python3"),
    (".sh", "bash"),
    (".rb", "ruby"),
    (".php", "php"),
    (".pl", "perl"),
    (".coffee", "coffee"),
    (".ls", "lsc"),
    (".ts", "bun"),
    (".tsx", "bun"),
];

/// The project an ecosystem file describes.
pub fn translate(config: &Value, cx: &Context) -> Result<Draft> {
    let mut draft = Draft::new(&cx.file);
    let apps = apps(config, &mut draft, cx)?;
    if apps.is_empty() {
        return Err(Error::bad_input(format!("{} has no apps", cx.file)));
    }
    let mut taken = BTreeSet::new();
    for (i, app) in apps.iter().enumerate() {
        let Value::Object(app) = app else {
            return Err(Error::bad_input(format!("{}: app {} is not an object of settings", cx.file, i + 1)));
        };
        let job = App::new(app, i, cx, &mut draft, &mut taken)?.translate();
        draft.jobs.push(job);
    }
    Ok(draft)
}

/// The apps, found where PM2 looks: `apps` (or `pm2`), a list, or one app alone. Other top-level
/// keys are reported.
fn apps<'a>(config: &'a Value, draft: &mut Draft, cx: &Context) -> Result<Vec<&'a Value>> {
    let found = match config {
        Value::Array(apps) => return Ok(apps.iter().collect()),
        Value::Object(top) => top.get("apps").or_else(|| top.get("pm2")),
        _ => None,
    };
    let Value::Object(top) = config else {
        return Err(Error::bad_input(format!(
            "{} holds no apps: expected {{ apps: [...] }} or a list of apps, found {}",
            cx.file,
            kind(config)
        )));
    };
    let Some(found) = found else { return Ok(vec![config]) };
    for key in top.keys().filter(|k| !matches!(k.as_str(), "apps" | "pm2")) {
        let reason = match key.as_str() {
            "deploy" => {
                "`pm2 deploy` targets (hosts, ssh, hooks) are not imported: on the server, `bgrun deploy` fast-forwards the checkout it runs in and converges"
            }
            "static" => "`pm2 serve` sites are not imported; run a static file server as a job",
            _ => "not a part of an ecosystem file bgrun knows",
        };
        draft.unsupported(None, key, reason);
    }
    Ok(match found {
        Value::Array(apps) => apps.iter().collect(),
        one => vec![one],
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One app being translated.
struct App<'a> {
    /// Its name in the source.
    source_name: String,
    job: Job,
    /// The keys read by their own code, by rule.
    own: BTreeMap<&'static str, &'a Value>,
    /// `env_<name>` tables.
    environments: Vec<(&'a str, &'a Value)>,
    cx: &'a Context,
    draft: &'a mut Draft,
}

impl<'a> App<'a> {
    fn new(
        app: &'a Map<String, Value>,
        index: usize,
        cx: &'a Context,
        draft: &'a mut Draft,
        taken: &mut BTreeSet<String>,
    ) -> Result<App<'a>> {
        let mut own = BTreeMap::new();
        let mut environments = Vec::new();
        let mut generic = Vec::new();
        let mut unknown = Vec::new();
        for (key, value) in app {
            match pm2_keys::rule(key) {
                None => unknown.push(key.as_str()),
                Some(rule) if rule.pm2 == "env_<name>" => environments.push((&key[ENV_PREFIX.len()..], value)),
                // The first spelling found wins, as in PM2.
                Some(rule) if rule.read == Read::Own => {
                    own.entry(rule.pm2).or_insert(value);
                }
                Some(rule) => generic.push((key.as_str(), rule, value)),
            }
        }
        let script = own.get("script").and_then(|v| v.as_str()).filter(|s| !s.trim().is_empty());
        let Some(script) = script else {
            let which = own.get("name").and_then(|v| text(v)).map_or(format!("{}", index + 1), |n| format!("{n:?}"));
            return Err(Error::bad_input(format!("{}: app {which} has no script", cx.file)));
        };
        // PM2 names an app after its script (without the extension) unless it is named.
        let source_name = own.get("name").and_then(|v| text(v)).unwrap_or_else(|| default_name(script));
        let (name, renamed) = convert::job_name(&source_name, taken);
        let mut job = Job::new(name, format!("{}, app {source_name:?}", cx.file));
        job.notes.extend(renamed);
        let mut this = App { source_name, job, own, environments, cx, draft };
        for key in unknown {
            this.unsupported(key, "not a PM2 setting bgrun knows");
        }
        for (key, rule, value) in generic {
            this.generic(key, rule, value);
        }
        Ok(this)
    }

    fn unsupported(&mut self, key: &str, reason: impl Into<String>) {
        let name = self.source_name.clone();
        self.draft.unsupported(Some(&name), key, reason);
    }

    /// Writes `value` under the rule's key, with its note when the translation is approximate.
    fn put(&mut self, rule: &Rule, value: impl Into<toml_edit::Value>) {
        let key = rule.bgrun;
        if rule.approximate {
            self.job.approx(key, value, rule.note);
        } else {
            self.job.set(key, value);
        }
    }

    /// A key read the same way as others of its kind.
    fn generic(&mut self, key: &str, rule: &'static Rule, value: &Value) {
        let wrong = |what: &str| format!("expected {what}, found {}", kind(value));
        match rule.read {
            Read::Nothing => {
                let quiet = match rule.quiet {
                    Quiet::Always => true,
                    Quiet::IfFalse => value == &Value::Bool(false),
                    Quiet::IfTrue => value == &Value::Bool(true),
                    Quiet::Never => false,
                };
                if !quiet {
                    self.unsupported(key, rule.note);
                }
            }
            Read::Text => match value.as_str() {
                Some(s) => self.put(rule, s),
                None => self.unsupported(key, wrong("a string")),
            },
            Read::Whole => match convert::whole(value).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => self.put(rule, n),
                None => self.unsupported(key, wrong("a whole number")),
            },
            Read::Millis => match convert::whole(value) {
                Some(ms) => self.put(rule, convert::millis(ms)),
                None => self.unsupported(key, wrong("milliseconds")),
            },
            Read::Duration => match duration(value) {
                Ok(d) => self.put(rule, d),
                Err(e) => self.unsupported(key, e),
            },
            Read::Size => match size(value) {
                Ok((mb, None)) => self.put(rule, mb),
                Ok((mb, Some(rounded))) => {
                    self.put(rule, mb);
                    self.job.add_note(rule.bgrun, &rounded);
                }
                Err(e) => self.unsupported(key, e),
            },
            Read::Codes => {
                let codes: Option<Vec<i64>> = match value {
                    Value::Array(items) => items.iter().map(Value::as_i64).collect(),
                    one => one.as_i64().map(|c| vec![c]),
                };
                match codes {
                    Some(codes) => self.put(rule, toml_edit::Value::from_iter(codes)),
                    None => self.unsupported(key, wrong("an exit code or a list of them")),
                }
            }
            Read::LogFile => match value {
                Value::String(path) if path != "/dev/null" && path != "NULL" => self.put(rule, path.as_str()),
                Value::String(_) | Value::Bool(_) => {}
                _ => self.unsupported(key, wrong("a file path")),
            },
            Read::Own => unreachable!("read by App::translate"),
        }
    }

    fn translate(mut self) -> Job {
        let cwd = self.cwd();
        self.command(&cwd);
        self.env();
        self.replicas();
        self.watch(&cwd);
        self.restart();
        self.rest();
        self.job
    }

    fn rule(&self, pm2: &str) -> Option<(&'static Rule, &'a Value)> {
        let value = self.own.get(pm2)?;
        Some((pm2_keys::named(pm2), *value))
    }

    /// The job's cwd, relative to the source's directory (what PM2 resolved `cwd` against), and
    /// written relative to the output's.
    fn cwd(&mut self) -> String {
        let cwd = match self.rule("cwd") {
            Some((_, Value::String(c))) => c.clone(),
            Some((_, other)) => {
                let reason = format!("expected a directory, found {}", kind(other));
                self.unsupported("cwd", reason);
                ".".into()
            }
            None => ".".into(),
        };
        if self.own.contains_key("cwd") || !self.cx.base.as_os_str().is_empty() {
            self.job.set("cwd", convert::rebase(&self.cx.base, &cwd));
        }
        cwd
    }

    /// `cmd`: interpreter, its arguments, the script and its arguments, as PM2 puts them together.
    fn command(&mut self, cwd: &str) {
        let script = self.own["script"].as_str().unwrap_or_default().to_string();
        let args = self.words("args");
        let node_args = self.words("node_args");
        let interpreter = match self.own.get("exec_interpreter") {
            Some(Value::String(i)) if i == "none" => None,
            Some(Value::String(i)) => Some(i.clone()),
            _ => interpreter_for(&script).map(str::to_string),
        };
        // A command line for a script: PM2 runs it through bash, and drops args and interpreter.
        if script.trim().contains(' ') {
            let ignored: Vec<&str> =
                ["args", "exec_interpreter", "node_args"].into_iter().filter(|k| self.own.contains_key(k)).collect();
            for key in ignored {
                self.unsupported(key, "PM2 ignores it when the script is a command line (it runs `bash -c SCRIPT`)");
            }
            self.job.set("cmd", toml_edit::Value::from_iter(["bash", "-c", script.trim()]));
            return;
        }
        let mut argv: Vec<String> = Vec::new();
        match &interpreter {
            Some(i) => {
                argv.push(i.clone());
                argv.extend(node_args);
            }
            None if !node_args.is_empty() => {
                self.unsupported("node_args", "the script runs directly, without an interpreter to pass them to")
            }
            None => {}
        }
        // PM2 runs a script found in the app's directory before one on PATH; so does `./`.
        let local = !script.contains('/') && self.cx.dir.join(cwd).join(&script).is_file();
        argv.push(if interpreter.is_none() && local { format!("./{script}") } else { script });
        argv.extend(args);
        self.job.set("cmd", toml_edit::Value::from_iter(argv));
        if interpreter.as_deref().is_some_and(|i| i.contains("python")) {
            self.job.env.insert("PYTHONUNBUFFERED".into(), "1".into());
            self.job.env_note("PYTHONUNBUFFERED: PM2 sets it for python apps, so their output is not held back");
        }
    }

    /// A list of arguments, given as a list or as one string PM2 splits.
    fn words(&mut self, key: &str) -> Vec<String> {
        match self.own.get(key) {
            None => vec![],
            Some(Value::String(s)) => split_words(s),
            Some(Value::Array(items)) => items.iter().map(convert::env_value).collect(),
            Some(Value::Number(n)) => vec![n.to_string()],
            Some(other) => {
                let reason = format!("expected a string or a list, found {}", kind(other));
                self.unsupported(key, reason);
                vec![]
            }
        }
    }

    fn env(&mut self) {
        match self.own.get("env") {
            Some(Value::Object(vars)) => {
                for (k, v) in vars {
                    self.job.env.insert(k.clone(), convert::env_value(v));
                }
            }
            Some(other) => {
                let reason = format!("expected an object of variables, found {}", kind(other));
                self.unsupported("env", reason);
            }
            None => {}
        }
        if let Some(port) = self.own.get("port").and_then(|p| text(p)) {
            self.job.env.insert("PORT".into(), port);
        }
        for (name, vars) in std::mem::take(&mut self.environments) {
            match vars {
                Value::Object(vars) => {
                    let vars = vars.iter().map(|(k, v)| (k.clone(), convert::env_value(v))).collect();
                    self.job.environments.insert(name.to_string(), vars);
                }
                other => {
                    let reason = format!("expected an object of variables, found {}", kind(other));
                    self.unsupported(&format!("{ENV_PREFIX}{name}"), reason);
                }
            }
        }
    }

    /// `instances` and `exec_mode` as replicas. A PORT shared by PM2's cluster becomes a port
    /// allocated to each replica.
    fn replicas(&mut self) {
        let cluster = self.own.get("exec_mode").and_then(|m| m.as_str()).is_some_and(|m| m.starts_with("cluster"));
        let Some(instances) = self.own.get("instances").copied() else { return };
        let asked = match instances {
            Value::String(s) if s == "max" => Some(0),
            Value::String(s) => Some(s.trim().parse().unwrap_or(0)),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let Some(asked) = asked else {
            let reason = format!("expected a number or \"max\", found {}", kind(instances));
            return self.unsupported("instances", reason);
        };
        let cpus = self.cx.cpus as i64;
        let count = match asked {
            0 => cpus,
            n if n < 0 => (cpus + n).max(1),
            n => n,
        };
        if count <= 1 {
            return;
        }
        let name = &self.job.name;
        let mut note =
            format!("each replica is a process of its own ({name}.1 … {name}.{count}, BGRUN_REPLICA counting from 0)");
        if asked <= 0 {
            note = format!("instances {instances}: {count} here ({cpus} CPUs at import time); {note}");
        }
        self.job.approx("replicas", count, note);
        if let Some(port) = self.job.env.remove("PORT") {
            let why = if cluster { "PM2's cluster mode shared" } else { "PM2's instances were given" };
            self.job.approx(
                "allocate-port",
                "PORT",
                format!(
                    "{why} PORT={port} among the {count} instances; bgrun's replicas are separate processes, \
                     so each gets a free port of its own in PORT (or all share one socket with \
                     `listen = \"0.0.0.0:{port}\"` if the app can take it from fd 3)"
                ),
            );
        } else if cluster {
            self.job.add_note(
                "replicas",
                "PM2's cluster mode let the instances share one listening port; bgrun's replicas are separate \
                 processes, each needing a port of its own (allocate-port)",
            );
        }
    }

    fn watch(&mut self, cwd: &str) {
        let dir = self.cx.dir.join(cwd);
        if let Some((rule, value)) = self.rule("watch") {
            let globs = match value {
                Value::Bool(true) => Some(vec!["**".to_string()]),
                Value::Bool(false) => Some(vec![]),
                Value::String(p) => Some(vec![watch_glob(&dir, p)]),
                Value::Array(items) => items.iter().map(|p| p.as_str().map(|p| watch_glob(&dir, p))).collect(),
                _ => None,
            };
            match globs {
                Some(globs) if globs.is_empty() => {}
                Some(globs) => self.put(rule, toml_edit::Value::from_iter(globs)),
                None => self.unsupported("watch", format!("expected true, a path or a list, found {}", kind(value))),
            }
        }
        if let Some((rule, value)) = self.rule("ignore_watch") {
            let entries: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            let mut globs = Vec::new();
            for entry in entries {
                match entry.as_str().map(ignore_glob) {
                    Some(Ok(glob)) => globs.push(glob),
                    Some(Err(e)) => self.unsupported("ignore_watch", e),
                    None => self.unsupported("ignore_watch", format!("expected a path, found {}", kind(entry))),
                }
            }
            if !globs.is_empty() {
                self.put(rule, toml_edit::Value::from_iter(globs));
            }
        }
    }

    fn restart(&mut self) {
        let rule = pm2_keys::named("autorestart");
        match self.own.get("autorestart") {
            Some(Value::Bool(false)) => self.job.set("restart", "never"),
            Some(Value::Bool(true)) | None => self.job.approx("restart", "always", rule.note),
            Some(other) => {
                let reason = format!("expected true or false, found {}", kind(other));
                self.unsupported("autorestart", reason);
            }
        }
        if self.own.get("autostart") == Some(&&Value::Bool(false)) {
            self.job.set("disabled", true);
        }
        match self.own.get("cron_restart").map(|c| text(c)) {
            None => {}
            Some(Some(cron)) if cron == "0" => {}
            Some(Some(cron)) => {
                self.job.set("cron", cron);
                if self.own.get("autorestart") == Some(&&Value::Bool(false)) {
                    self.job.add_note(
                        "restart",
                        "with cron_restart, PM2 ran the app again at each cron time even after it exited; \
                         if it is a task that ends, make it `oneshot = true`: bgrun then runs it at `up` and \
                         at each cron time, as PM2 did",
                    );
                }
            }
            _ => self.unsupported("cron_restart", "expected a cron expression"),
        }
    }

    /// The keys that decide a value by theirs (log timestamps, the kill mode), and how PM2 stops
    /// an app.
    fn rest(&mut self) {
        self.job.approx(
            "stop-signal",
            "SIGINT",
            "PM2 stops apps with SIGINT (where bgrun would send SIGTERM), and their shutdown handlers listen for it",
        );
        for key in ["time", "log_date_format"] {
            if let Some((rule, value)) = self.rule(key)
                && !matches!(value, Value::Bool(false) | Value::Null)
            {
                self.put(rule, true);
            }
        }
        if let Some((rule, Value::Bool(false))) = self.rule("treekill") {
            self.put(rule, "main");
        }
    }
}

/// PM2's name for an unnamed app: its script's file name without the extension, or a command line
/// whole.
fn default_name(script: &str) -> String {
    if script.trim().contains(' ') {
        return script.trim().to_string();
    }
    let base = Path::new(script).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match base.rfind('.') {
        Some(dot) if dot > 0 => base[..dot].to_string(),
        _ => base,
    }
}

fn interpreter_for(script: &str) -> Option<&'static str> {
    INTERPRETERS.iter().find(|(ext, _)| script.ends_with(ext)).map(|(_, i)| *i)
}

/// Splits a string of arguments as PM2 does: on whitespace, with "double" or 'single' quotes
/// grouping words (and dropped), also after `key=`.
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                started = true;
            }
            None if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            None => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words.retain(|w| !w.trim().is_empty());
    words
}

/// PM2's `min_uptime`: milliseconds, or a number with h, m or s.
fn duration(value: &Value) -> std::result::Result<String, String> {
    if let Some(ms) = convert::whole(value) {
        return Ok(convert::millis(ms));
    }
    match value.as_str() {
        Some(s) if crate::spec::parse_duration(s).is_ok() => Ok(s.trim().to_string()),
        _ => Err(format!("{value} is not a duration PM2 or bgrun reads (e.g. 5000, \"30s\", \"1h\")")),
    }
}

/// PM2's memory size (bytes, or a number with K, M or G) in megabytes, and a note when it had to
/// be rounded.
fn size(value: &Value) -> std::result::Result<(String, Option<String>), String> {
    let bad = || format!("{value} is not a size (e.g. \"300M\", \"1G\", or bytes)");
    let (number, unit) = match value {
        Value::Number(n) => (n.as_f64().ok_or_else(bad)?, 'B'),
        Value::String(s) => {
            let s = s.trim();
            let unit = s.chars().last().filter(|c| c.is_ascii_alphabetic()).map(|c| c.to_ascii_uppercase());
            let digits = if unit.is_some() { &s[..s.len() - 1] } else { s };
            (digits.trim().parse::<f64>().map_err(|_| bad())?, unit.unwrap_or('B'))
        }
        _ => return Err(bad()),
    };
    let mb = match unit {
        'G' => return Ok((format!("{}GB", trim_float(number)), None)),
        'M' => return Ok((format!("{}MB", trim_float(number)), None)),
        'K' => number / 1024.0,
        'B' => number / (1024.0 * 1024.0),
        _ => return Err(bad()),
    };
    let whole = mb.ceil().max(1.0);
    let note = (whole != mb).then(|| format!("{value} rounded up to whole megabytes"));
    Ok((format!("{whole}MB"), note))
}

fn trim_float(n: f64) -> String {
    if n.fract() == 0.0 { format!("{}", n as u64) } else { format!("{n}") }
}

/// A PM2 watch path as a glob under the job's cwd: a directory (or a path not there yet) watches
/// everything under it.
fn watch_glob(dir: &Path, path: &str) -> String {
    let path = path.trim_start_matches("./").trim_end_matches('/');
    if path.contains(['*', '?', '[', '{']) || dir.join(path).is_file() {
        path.to_string()
    } else if path.is_empty() || path == "." {
        "**".to_string()
    } else {
        format!("{path}/**")
    }
}

/// A PM2 `ignore_watch` entry as a glob: a plain name ignores it anywhere, a glob stays one; a
/// regex cannot be carried over.
fn ignore_glob(entry: &str) -> std::result::Result<String, String> {
    let plain = entry.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if plain {
        let path = entry.trim_start_matches("./").trim_end_matches('/');
        return Ok(if path.contains('/') { format!("{path}/**") } else { format!("**/{path}/**") });
    }
    let regex_like = entry.contains(['\\', '^', '$', '(', '|', '+']);
    match globset::Glob::new(entry) {
        Ok(_) if !regex_like => Ok(entry.to_string()),
        _ => Err(format!("{entry:?} is a regex; write it as a glob in watch-ignore")),
    }
}

#[cfg(test)]
mod tests;
