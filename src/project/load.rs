//! Loading `bgrun.toml`: find it, parse it keeping source spans, check everything, and turn each
//! job table into a [`JobSpec`]. Every problem is collected (with its span and a hint) before
//! anything is returned, so the user fixes them in one go; a file with problems yields no jobs.

use super::config_env;
use super::diag::{Problem, Problems};
use super::file::{After, Command, Config, JobTable, OneOrMany, Seconds, Size};
use crate::graph::Graph;
use crate::spec::{self, Health, JobSpec, Pty, Readiness};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::Item;

/// A project ready to run: its name, file, and jobs (in start order).
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub file: PathBuf,
    pub jobs: Vec<JobSpec>,
    /// Every file the jobs were read from: the project file and its env-files.
    pub inputs: Vec<PathBuf>,
    /// Each job's `image` (by its name in the file), which only `bgrun export` reads.
    pub images: BTreeMap<String, String>,
}

impl Project {
    /// `--force`: each job started by this command first stops whatever holds its ports.
    pub fn force(&mut self, force: bool) {
        for job in &mut self.jobs {
            job.force = force;
        }
    }
}

/// `bgrun.toml` in `start` or the nearest parent that has one.
pub fn find(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join(super::FILE_NAME)).find(|p| p.is_file())
}

/// What a file is loaded with besides its text.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The environment jobs start from (the caller's).
    pub inherited: BTreeMap<String, String>,
    /// The named environment to lay over every job's (`bgrun up --env production`).
    pub environment: Option<String>,
}

/// Reads and checks the file.
pub fn load(path: &Path, options: &Options) -> Result<Project, Problems> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        Problems::new(path, String::new(), vec![Problem::new(None, format!("cannot read {}: {e}", path.display()))])
    })?;
    parse(path, source, options)
}

/// The top-level keys, besides `[project]` and `[jobs]`.
const TOP_LEVEL: [&str; 5] = ["project", "jobs", "env", "env-file", "environments"];

pub fn parse(path: &Path, source: String, options: &Options) -> Result<Project, Problems> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let doc = match toml_edit::Document::parse(source.clone()) {
        Ok(doc) => doc,
        Err(e) => {
            let p = Problem::new(e.span(), format!("not valid TOML: {}", e.message().trim()));
            return Err(Problems::new(path, source, vec![p]));
        }
    };
    let mut checker = Checker { problems: Vec::new(), dir: dir.clone(), inputs: vec![path.to_path_buf()] };
    let root = doc.as_table();
    for (key, _) in root.iter() {
        if !TOP_LEVEL.contains(&key) {
            checker.unknown_key(root.key(key), key, &TOP_LEVEL, "at the top level");
        }
    }
    let name = checker.project_name(root.get("project"), &dir);
    let tables = checker.job_tables(root.get("jobs"));
    let shared = checker.project_env(root, &tables, options);
    let names: Vec<String> = tables.iter().map(|(n, ..)| n.clone()).collect();
    let mut jobs = Vec::new();
    for (job_name, table, spans) in &tables {
        if let Some(spec) = checker.job(job_name, table, spans, &names, &name, &shared) {
            jobs.extend(replicas(spec, table.replicas));
        }
    }
    checker.cycles(&tables);
    checker.replica_names(&tables);
    expand_replica_dependencies(&mut jobs);
    if !checker.problems.is_empty() {
        checker.problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        return Err(Problems::new(path, source, checker.problems));
    }
    let deps: BTreeMap<String, Vec<String>> =
        jobs.iter().map(|j| (j.name.clone().unwrap_or_default(), j.after_names())).collect();
    // Each job's place in the start order, looked up (a search of the order for every comparison
    // of the sort made loading a file of N jobs cost N² log N).
    let order: std::collections::HashMap<String, usize> = Graph::new(&deps)
        .start_order()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), i))
        .collect();
    jobs.sort_by_key(|j| j.name.as_ref().and_then(|n| order.get(n).copied()));
    let images = tables.iter().filter_map(|(n, t, _)| Some((n.clone(), t.image.clone()?))).collect();
    Ok(Project { name, file: path.to_path_buf(), jobs, inputs: checker.inputs, images })
}

/// Where each key of a job table is, for pointing at the right place in later checks.
#[derive(Default)]
struct Spans {
    name: Option<Range<usize>>,
    keys: BTreeMap<String, Range<usize>>,
    values: BTreeMap<String, Range<usize>>,
}

impl Spans {
    fn value(&self, key: &str) -> Option<Range<usize>> {
        self.values.get(key).or(self.keys.get(key)).cloned().or(self.name.clone())
    }
}

struct Checker {
    problems: Vec<Problem>,
    dir: PathBuf,
    inputs: Vec<PathBuf>,
}

impl Checker {
    fn problem(&mut self, span: Option<Range<usize>>, message: String, hint: Option<String>) {
        self.problems.push(Problem { span, message, hint });
    }

    fn unknown_key(&mut self, key: Option<&toml_edit::Key>, name: &str, known: &[&str], place: &str) {
        let hint = strsim_best(name, known).map(|k| format!("did you mean `{k}`?"));
        self.problem(key.and_then(|k| k.span()), format!("unknown key `{name}` {place}"), hint);
    }

    fn project_name(&mut self, item: Option<&Item>, dir: &Path) -> String {
        let default = || {
            dir.canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "project".into())
        };
        let Some(item) = item else { return default() };
        let Some(t) = item.as_table_like() else {
            self.problem(
                item.span(),
                "`project` must be a table".into(),
                Some("write `[project]` then `name = \"...\"`".into()),
            );
            return default();
        };
        for (key, _) in t.iter() {
            if key != "name" {
                self.unknown_key(t.key(key), key, &["name"], "in [project]");
            }
        }
        match t.get("name") {
            None => default(),
            Some(v) => match v.as_str() {
                Some(n) if spec::validate_name(n).is_ok() => n.to_string(),
                _ => {
                    let hint = "letters, digits, '.', '_' and '-', starting with a letter or digit";
                    self.problem(v.span(), "the project name must be a plain name".into(), Some(hint.into()));
                    default()
                }
            },
        }
    }

    /// The job tables, each with unknown keys reported and removed, deserialized into
    /// [`JobTable`] (type errors reported per job).
    fn job_tables(&mut self, item: Option<&Item>) -> Vec<(String, JobTable, Spans)> {
        let Some(item) = item else { return vec![] };
        let Some(jobs) = item.as_table_like() else {
            self.problem(
                item.span(),
                "`jobs` must be a table of job tables".into(),
                Some("write `[jobs.<name>]`".into()),
            );
            return vec![];
        };
        let known = super::file::job_keys();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for (name, item) in jobs.iter() {
            let name_span = jobs.key(name).and_then(|k| k.span());
            if let Err(e) = spec::validate_name(name) {
                self.problem(name_span.clone(), e.message, e.hint);
                continue;
            }
            let Some(table) = item.as_table_like() else {
                self.problem(
                    item.span(),
                    format!("job `{name}` must be a table"),
                    Some(format!("write `[jobs.{name}]`")),
                );
                continue;
            };
            let mut spans = Spans { name: name_span, ..Spans::default() };
            let mut inline = toml_edit::InlineTable::new();
            for (key, value) in table.iter() {
                if let Some(span) = table.key(key).and_then(|k| k.span()) {
                    spans.keys.insert(key.to_string(), span);
                }
                if let Some(span) = value.span() {
                    spans.values.insert(key.to_string(), span);
                }
                if !known.contains(&key) {
                    self.unknown_key(table.key(key), key, &known, &format!("in [jobs.{name}]"));
                    continue;
                }
                match value.clone().into_value() {
                    Ok(v) => {
                        inline.insert(key, v);
                    }
                    Err(_) => self.problem(value.span(), format!("`{key}` cannot be a table here"), None),
                }
            }
            if !inline.contains_key("cmd") {
                self.problem(
                    spans.name.clone(),
                    format!("job `{name}` has no `cmd`"),
                    Some("add `cmd = \"...\"`".into()),
                );
                continue;
            }
            // A value of the wrong type is reported, dropped, and the rest of the job checked on.
            let table = loop {
                match JobTable::deserialize(toml_edit::Value::InlineTable(inline.clone()).into_deserializer()) {
                    Ok(t) => break Some(t),
                    Err(e) => {
                        let span = e.span().or(spans.name.clone());
                        self.problem(span.clone(), format!("in [jobs.{name}]: {}", e.message().trim()), None);
                        let culprit = spans
                            .values
                            .iter()
                            .find(|(_, s)| span.as_ref().is_some_and(|sp| s.start <= sp.start && sp.end <= s.end));
                        match culprit.map(|(k, _)| k.clone()) {
                            Some(key) if key != "cmd" && inline.remove(&key).is_some() => continue,
                            _ => break None,
                        }
                    }
                }
            };
            if let Some(t) = table {
                out.push((name.to_string(), t, spans));
            }
        }
        out
    }

    /// A duration key: whole seconds, or text like "500ms".
    fn duration(&mut self, value: Option<&Seconds>, key: &str, spans: &Spans, default: Duration) -> Duration {
        match value {
            None => default,
            Some(Seconds::Whole(s)) => Duration::from_secs(*s),
            Some(Seconds::Text(t)) => spec::parse_duration(t).unwrap_or_else(|e| {
                self.problem(spans.value(key), format!("`{key}`: {e}"), None);
                default
            }),
        }
    }

    fn size_mb(&mut self, value: Option<&Size>, key: &str, spans: &Spans) -> Option<u64> {
        match value? {
            Size::Megabytes(mb) => Some(*mb),
            Size::Text(text) => spec::parse_size_mb(text)
                .map_err(|e| self.problem(spans.value(key), format!("`{key}`: {e}"), None))
                .ok(),
        }
    }

    fn job(
        &mut self,
        name: &str,
        t: &JobTable,
        spans: &Spans,
        names: &[String],
        project: &str,
        shared: &SharedEnv,
    ) -> Option<JobSpec> {
        let before = self.problems.len();
        let cmd = match &t.cmd {
            Command::Line(line) => vec![line.clone()],
            Command::Argv(argv) => argv.clone(),
        };
        if cmd.first().is_none_or(|c| c.trim().is_empty()) {
            self.problem(spans.value("cmd"), "`cmd` is empty".into(), None);
        }
        let cwd = match &t.cwd {
            Some(c) => self.dir.join(c),
            None => self.dir.clone(),
        };
        if !cwd.is_dir() {
            self.problem(spans.value("cwd"), format!("working directory {} does not exist", cwd.display()), None);
        }
        // Layer by layer, each over the one before: the job's settings file, the project's
        // env-files and `[env]`, the job's env-files and `env`, then the selected environment's,
        // the project's then the job's.
        let mut env = Layers::default();
        if let Some((file, vars)) = self.config(t.config.as_ref(), &cwd, spans.value("config")) {
            env.lay(&vars, &format!("config {file}"));
        }
        for (file, vars) in &shared.files {
            env.lay(vars, &format!("env-file {file}"));
        }
        env.lay(&shared.env, "[env]");
        for (file, vars) in self.env_files(t.env_file.as_ref(), spans.value("env-file")) {
            env.lay(&vars, &format!("env-file {file}"));
        }
        env.lay(&t.env, &format!("[jobs.{name}.env]"));
        if let Some((selected, vars)) = &shared.environment {
            env.lay(vars, &format!("[environments.{selected}]"));
            if let Some(vars) = t.environments.get(selected) {
                env.lay(vars, &format!("[jobs.{name}.environments.{selected}]"));
            }
        }
        let Layers { vars: declared_env, sources: env_sources } = env;
        let after = t.after.as_ref().map(After::dependencies).unwrap_or_default();
        for dep in after.iter().map(|d| &d.job) {
            if dep == name {
                self.problem(spans.value("after"), format!("job `{name}` cannot start after itself"), None);
            } else if !names.contains(dep) {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                let hint = strsim_best(dep, &known).map(|k| format!("did you mean `{k}`?"));
                self.problem(spans.value("after"), format!("`after`: there is no job `{dep}` in this file"), hint);
            }
        }
        let stop_signal = t.stop_signal.as_ref().and_then(|s| match spec::parse_signal(s) {
            Ok(signal) => Some(signal.as_str().to_string()),
            Err(e) => {
                self.problem(spans.value("stop-signal"), format!("`stop-signal`: {e}"), None);
                None
            }
        });
        let log_regex = t.ready_when_regex.clone().map(OneOrMany::into_vec).unwrap_or_default();
        for r in &log_regex {
            if let Err(e) = regex::Regex::new(r) {
                self.problem(
                    spans.value("ready-when-regex"),
                    format!("`ready-when-regex` {r:?} is not a valid regex: {e}"),
                    None,
                );
            }
        }
        let max_rss_mb = self.size_mb(t.max_rss.as_ref(), "max-rss", spans);
        let log_max_size_mb = self.size_mb(t.log_max_size.as_ref(), "log-max-size", spans);
        if t.log_max_files == Some(0) {
            self.problem(spans.value("log-max-files"), "`log-max-files` must be at least 1".into(), None);
        }
        let health_interval =
            self.duration(t.health_interval.as_ref(), "health-interval", spans, Duration::from_secs(10));
        let health_timeout =
            self.duration(t.health_timeout.as_ref(), "health-timeout", spans, spec::DEFAULT_HEALTH_TIMEOUT);
        let start_period = self.duration(t.health_start_period.as_ref(), "health-start-period", spans, Duration::ZERO);
        let probed = t.health_check_url.is_some() || t.health_check_port.is_some() || t.health_check_exec.is_some();
        let health = probed.then(|| Health {
            url: t.health_check_url.clone(),
            port: t.health_check_port,
            exec: t.health_check_exec.clone(),
            interval: health_interval,
            threshold: t.health_threshold.unwrap_or(3),
            timeout: health_timeout,
            start_period,
        });
        let mut env = shared.inherited.clone();
        env.extend(declared_env.clone());
        let mut spec = JobSpec {
            name: Some(name.to_string()),
            workspace: t.workspace.clone(),
            cmd,
            cwd,
            env,
            ready: Readiness {
                log_contains: t.ready_when.clone().map(OneOrMany::into_vec).unwrap_or_default(),
                log_regex,
                port: t.ready_when_port,
                url: t.ready_when_url.clone(),
                file: t.ready_when_file.as_ref().map(PathBuf::from),
                notify: t.ready_when_notify,
                exec: t.ready_when_exec.clone(),
                timeout: self.duration(t.ready_timeout.as_ref(), "ready-timeout", spans, spec::DEFAULT_READY_TIMEOUT),
            },
            after,
            oneshot: t.oneshot,
            daemonizes: t.daemonizes,
            pidfile: t.pidfile.as_ref().map(PathBuf::from),
            stop: spec::Stopping {
                signal: stop_signal,
                command: t.stop_command.clone(),
                kill_mode: t.kill_mode.unwrap_or_default(),
            },
            pty: t.pty.then(|| Pty { cols: t.cols.unwrap_or(80), rows: t.rows.unwrap_or(24) }),
            restart: t.restart.unwrap_or_default(),
            backoff: self.duration(t.backoff.as_ref(), "backoff", spans, spec::DEFAULT_BACKOFF),
            restarts: spec::Restarts {
                max: t.max_restarts.unwrap_or(spec::DEFAULT_MAX_RESTARTS),
                min_uptime: self.duration(t.min_uptime.as_ref(), "min-uptime", spans, spec::DEFAULT_MIN_UPTIME),
                delay: t.restart_delay.as_ref().map(|d| self.duration(Some(d), "restart-delay", spans, Duration::ZERO)),
                stop_exit_codes: t.stop_exit_codes.clone(),
            },
            disabled: t.disabled,
            mirror: spec::Mirror {
                stdout: t.stdout.as_ref().map(PathBuf::from),
                stderr: t.stderr.as_ref().map(PathBuf::from),
                log: t.log.as_ref().map(PathBuf::from),
                timestamps: t.log_timestamps,
            },
            log_limits: spec::LogLimits { max_size_mb: log_max_size_mb, max_files: t.log_max_files },
            max_rss_mb,
            max_runtime: t.max_runtime.as_ref().map(|m| self.duration(Some(m), "max-runtime", spans, Duration::ZERO)),
            allocate_ports: t.allocate_port.clone().map(OneOrMany::into_vec).unwrap_or_default(),
            listen: t.listen.clone().map(OneOrMany::into_vec).unwrap_or_default(),
            health,
            grace: self.duration(t.grace.as_ref(), "grace", spans, spec::DEFAULT_GRACE),
            project: Some(project.to_string()),
            declared_env,
            watch: t.watch.clone(),
            watch_ignore: t.watch_ignore.clone(),
            restart_with_dependencies: t.restart_with_dependencies,
            request_id: None,
            env_sources,
            replica: None,
            cron: t.cron.clone(),
            fetch: t.fetch,
            update: t.update,
            container: t.container,
            force: false,
        };
        if let Some(cron) = &t.cron
            && let Err(e) = crate::schedule::Schedule::parse(cron)
        {
            self.problem(spans.value("cron"), format!("`cron`: {e}"), Some(CRON_HINT.into()));
        }
        if t.replicas == Some(0) {
            self.problem(spans.value("replicas"), "`replicas` must be at least 1".into(), None);
        }
        spec.resolve_container_readiness();
        if self.problems.len() == before
            && let Err(e) = spec.validate()
        {
            self.problem(spans.name.clone(), format!("job `{name}`: {}", e.message), e.hint);
        }
        (self.problems.len() == before).then_some(spec)
    }

    /// The variables of each env-file named by `files` (relative to the project file), which
    /// become inputs of the project (watched, and part of its jobs).
    fn env_files(
        &mut self,
        files: Option<&OneOrMany>,
        span: Option<Range<usize>>,
    ) -> Vec<(String, BTreeMap<String, String>)> {
        let mut out = Vec::new();
        for file in files.cloned().map(OneOrMany::into_vec).unwrap_or_default() {
            let path = self.dir.join(&file);
            if !self.inputs.contains(&path) {
                self.inputs.push(path.clone());
            }
            match read_env_file(&path) {
                Ok(vars) => out.push((file, vars)),
                Err(e) => self.problem(span.clone(), format!("`env-file` {file}: {e}"), None),
            }
        }
        out
    }

    /// The job's settings file as variables (and its name as written): `config`, or
    /// `.config.toml` in the job's cwd when there is one and `config` is not `false`.
    fn config(
        &mut self,
        choice: Option<&Config>,
        cwd: &Path,
        span: Option<Range<usize>>,
    ) -> Option<(String, BTreeMap<String, String>)> {
        let (shown, path) = match choice {
            Some(Config::Use(false)) => return None,
            Some(Config::File(file)) => (file.clone(), self.dir.join(file)),
            None | Some(Config::Use(true)) => {
                let path = cwd.join(config_env::DEFAULT_FILE);
                if !path.is_file() {
                    return None;
                }
                (config_env::DEFAULT_FILE.to_string(), path)
            }
        };
        if !self.inputs.contains(&path) {
            self.inputs.push(path.clone());
        }
        match config_env::read(&path) {
            Ok(vars) => Some((shown, vars)),
            Err(e) => {
                let hint = "a TOML file: [table] then key = value lines".to_string();
                self.problem(span, format!("`config`: {e}"), Some(hint));
                None
            }
        }
    }

    /// A table of KEY = "value" strings at `place` (for messages); anything else is a problem.
    fn strings(&mut self, item: &Item, place: &str) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let Some(table) = item.as_table_like() else {
            self.problem(item.span(), format!("`{place}` must be a table of KEY = \"value\""), None);
            return vars;
        };
        for (key, value) in table.iter() {
            match value.as_str() {
                Some(v) => {
                    vars.insert(key.to_string(), v.to_string());
                }
                None => self.problem(
                    value.span(),
                    format!("`{place}.{key}` must be a string"),
                    Some(format!("quote it: {key} = \"...\"")),
                ),
            }
        }
        vars
    }

    /// The project-wide `[env]` and `env-file`, and the selected environment's variables
    /// (which must exist, project-wide or in some job).
    fn project_env(
        &mut self,
        root: &toml_edit::Table,
        tables: &[(String, JobTable, Spans)],
        options: &Options,
    ) -> SharedEnv {
        let selected = options.environment.as_deref();
        let env = root.get("env").map(|item| self.strings(item, "env")).unwrap_or_default();
        let env_file = match root.get("env-file") {
            None => None,
            Some(item) => match item.clone().into_value().map(|v| OneOrMany::deserialize(v.into_deserializer())) {
                Ok(Ok(files)) => Some(files),
                _ => {
                    self.problem(item.span(), "`env-file` must be a file name or a list of them".into(), None);
                    None
                }
            },
        };
        let span = root.get("env-file").and_then(Item::span);
        let files = self.env_files(env_file.as_ref(), span);
        let mut environments: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if let Some(item) = root.get("environments") {
            match item.as_table_like() {
                Some(table) => {
                    for (name, vars) in table.iter() {
                        let vars = self.strings(vars, &format!("environments.{name}"));
                        environments.insert(name.to_string(), vars);
                    }
                }
                None => self.problem(
                    item.span(),
                    "`environments` must hold one table per environment".into(),
                    Some("write `[environments.production]` then KEY = \"value\" lines".into()),
                ),
            }
        }
        let environment = selected.map(|name| {
            let known: std::collections::BTreeSet<&str> = environments
                .keys()
                .map(String::as_str)
                .chain(tables.iter().flat_map(|(_, t, _)| t.environments.keys().map(String::as_str)))
                .collect();
            if !known.contains(name) {
                let list: Vec<&str> = known.iter().copied().collect();
                let hint = if list.is_empty() {
                    "add `[environments.<name>]` (or `[jobs.<job>.environments.<name>]`) to the file".to_string()
                } else {
                    format!("this file has: {}", list.join(", "))
                };
                self.problem(None, format!("there is no environment `{name}` in this file"), Some(hint));
            }
            (name.to_string(), environments.get(name).cloned().unwrap_or_default())
        });
        SharedEnv { inherited: options.inherited.clone(), env, files, environment }
    }

    /// The copies of a job with `replicas` are named `<job>.1` …: a job of the file with such a
    /// name would be two jobs at once.
    fn replica_names(&mut self, tables: &[(String, JobTable, Spans)]) {
        for (name, table, _) in tables {
            for i in 1..=table.replicas.unwrap_or(0) {
                let copy = format!("{name}.{i}");
                if let Some((_, _, spans)) = tables.iter().find(|(n, ..)| *n == copy) {
                    let hint = format!("rename `{copy}`: `{name}` with replicas names its copies {name}.1, {name}.2 …");
                    self.problem(
                        spans.name.clone(),
                        format!("job `{copy}` clashes with a copy of `{name}`"),
                        Some(hint),
                    );
                }
            }
        }
    }

    /// Each cycle is reported once, at the `after` of every job in it, naming them all.
    fn cycles(&mut self, tables: &[(String, JobTable, Spans)]) {
        let deps: BTreeMap<String, Vec<String>> = tables
            .iter()
            .map(|(n, t, _)| (n.clone(), t.after.as_ref().map(After::dependencies).unwrap_or_default()))
            .map(|(n, deps)| (n, deps.into_iter().map(|d| d.job).collect()))
            .collect();
        for cycle in Graph::new(&deps).cycles() {
            let ring = format!("{} → {}", cycle.join(" → "), cycle[0]);
            let span = tables.iter().find(|(n, ..)| n == cycle[0]).and_then(|(_, _, s)| s.value("after"));
            let hint = "remove one of these `after` entries".to_string();
            self.problem(span, format!("dependency cycle: {ring}"), Some(hint));
        }
    }
}

const CRON_HINT: &str =
    "five fields (minute hour day month weekday), or six with seconds first: \"0 3 * * *\", \"*/10 * * * * *\"";

/// What every job of a project gets: the caller's environment, `[env]`, the variables of its
/// `env-file`s (by file, in order), and the selected environment (its name and project-wide
/// variables).
#[derive(Default)]
struct SharedEnv {
    inherited: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    files: Vec<(String, BTreeMap<String, String>)>,
    environment: Option<(String, BTreeMap<String, String>)>,
}

/// A job's declared environment as it is laid together, with where each variable came from.
#[derive(Default)]
struct Layers {
    vars: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
}

impl Layers {
    fn lay(&mut self, vars: &BTreeMap<String, String>, source: &str) {
        for (key, value) in vars {
            self.vars.insert(key.clone(), value.clone());
            self.sources.insert(key.clone(), source.to_string());
        }
    }
}

/// The copies of a job with `replicas = N`: `api.1` … `api.N`, each told its index.
fn replicas(spec: JobSpec, count: Option<u32>) -> Vec<JobSpec> {
    let Some(count) = count else { return vec![spec] };
    let base = spec.name.clone().unwrap_or_default();
    (0..count)
        .map(|index| {
            let mut copy = spec.clone();
            copy.name = Some(format!("{base}.{}", index + 1));
            for (key, value) in [("BGRUN_REPLICA", index), ("BGRUN_REPLICA_NUMBER", index + 1)] {
                copy.declared_env.insert(key.into(), value.to_string());
                copy.env.insert(key.into(), value.to_string());
                copy.env_sources.insert(key.into(), "replicas".into());
            }
            copy.replica = Some(spec::Replica { of: base.clone(), index });
            copy
        })
        .collect()
}

/// A job that starts after a job with replicas starts after every copy of it.
fn expand_replica_dependencies(jobs: &mut [JobSpec]) {
    let mut copies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in jobs.iter() {
        if let (Some(replica), Some(name)) = (&job.replica, &job.name) {
            copies.entry(replica.of.clone()).or_default().push(name.clone());
        }
    }
    if copies.is_empty() {
        return;
    }
    for job in jobs.iter_mut() {
        job.after = std::mem::take(&mut job.after)
            .into_iter()
            .flat_map(|dep| match copies.get(&dep.job) {
                Some(names) => names.iter().map(|n| spec::Dependency::new(n, dep.condition)).collect(),
                None => vec![dep],
            })
            .collect();
    }
}

/// The closest known name, if any is close enough to be a likely typo.
fn strsim_best<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(word, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The variables of a dotenv file, as dotenv tools read it: quotes, an `export ` prefix, inline
/// comments, multi-line values, and `${VAR}` expanded from the lines above it (or the caller's
/// environment).
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let describe = |e: dotenvy::Error| match e {
        dotenvy::Error::LineParse(line, at) => format!("cannot read {line:?} (at character {at})"),
        other => other.to_string(),
    };
    dotenvy::from_path_iter(path).map_err(describe)?.map(|item| item.map_err(describe)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Project, Problems> {
        let dir = std::env::temp_dir();
        parse(&dir.join("bgrun.toml"), text.to_string(), &Options::default())
    }

    fn problems(text: &str) -> Vec<(usize, String, Option<String>)> {
        let err = parse_str(text).expect_err("should not load");
        err.views().into_iter().map(|v| (v.line.unwrap_or(0), v.message, v.hint)).collect()
    }

    #[test]
    fn a_good_file_becomes_specs_in_start_order() {
        let p = parse_str(
            r#"
[project]
name = "shop"

[jobs.web]
cmd = "npm run dev"
after = ["api"]
ready-when-port = 3000

[jobs.api]
cmd = ["cargo", "run"]
after = "db"
env = { RUST_LOG = "info" }
max-rss = "1GB"
health-check-port = 8080
health-interval = "500ms"
restart = "on-crash"
backoff = "1s"

[jobs.db]
cmd = "postgres"
ready-when = "accepting connections"
"#,
        )
        .unwrap();
        assert_eq!(p.name, "shop");
        let names: Vec<_> = p.jobs.iter().map(|j| j.name.clone().unwrap()).collect();
        assert_eq!(names, vec!["db", "api", "web"]);
        let api = &p.jobs[1];
        assert_eq!(api.cmd, vec!["cargo", "run"]);
        assert_eq!(api.after, vec![spec::Dependency::new("db", spec::Condition::Ready)]);
        assert_eq!(api.max_rss_mb, Some(1024));
        assert_eq!(api.health.as_ref().unwrap().interval, Duration::from_millis(500));
        assert_eq!(api.declared_env.get("RUST_LOG").map(String::as_str), Some("info"));
        assert_eq!(api.project.as_deref(), Some("shop"));
        assert_eq!(p.jobs[2].ready.port, Some(3000));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line() {
        let found = problems(
            r#"[jobs.api]
cmd = "x"
ready-when-prot = 3000
backoff = "soon"
after = ["dbb"]

[jobs.db]
cmd = "y"
max-rss = "lots"
ready-when-port = "http"
"#,
        );
        let lines: Vec<usize> = found.iter().map(|f| f.0).collect();
        assert_eq!(lines, vec![3, 4, 5, 9, 10], "{found:#?}");
        assert!(found[0].1.contains("unknown key `ready-when-prot`"));
        assert_eq!(found[0].2.as_deref(), Some("did you mean `ready-when-port`?"));
        assert!(found[1].1.contains("backoff"));
        assert!(found[2].1.contains("no job `dbb`"));
        assert_eq!(found[2].2.as_deref(), Some("did you mean `db`?"));
        assert!(found[3].1.contains("max-rss"));
        assert!(found[4].1.contains("invalid type"), "{found:#?}");
    }

    #[test]
    fn cycles_are_named() {
        let found =
            problems("[jobs.a]\ncmd='x'\nafter='c'\n[jobs.b]\ncmd='x'\nafter='a'\n[jobs.c]\ncmd='x'\nafter='b'\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, "dependency cycle: a → b → c → a");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let found = problems("[jobs.a]\ncmd = \"unterminated\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.starts_with("not valid TOML"));
    }

    #[test]
    fn missing_cmd_and_bad_names() {
        let found = problems("[jobs.a]\ncwd = '.'\n[jobs.'bad name']\ncmd='x'\n[other]\n");
        let msgs: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("has no `cmd`")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("invalid job name")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("unknown key `other`")), "{msgs:?}");
    }

    #[test]
    fn env_files_follow_dotenv_conventions() {
        let dir = std::env::temp_dir().join(format!("bgrun-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "# comment\nexport APP_NAME=\"Shop\"\nMAIL_FROM_NAME=\"${APP_NAME} mailer\"\nPORT=8080 # the port\n\n\
                    SINGLE='a $b'\nKEY=\"line one\nline two\"\n";
        std::fs::write(dir.join(".env"), text).unwrap();
        let vars = read_env_file(&dir.join(".env")).unwrap();
        assert_eq!(vars["APP_NAME"], "Shop");
        assert_eq!(vars["MAIL_FROM_NAME"], "Shop mailer");
        assert_eq!(vars["PORT"], "8080");
        assert_eq!(vars["SINGLE"], "a $b");
        assert_eq!(vars["KEY"], "line one\nline two");
        std::fs::write(dir.join("bad.env"), "novalue\n").unwrap();
        assert!(read_env_file(&dir.join("bad.env")).unwrap_err().contains("novalue"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn parse_in(dir: &Path, text: &str, environment: Option<&str>) -> Result<Project, Problems> {
        let options = Options { inherited: BTreeMap::new(), environment: environment.map(String::from) };
        parse(&dir.join("bgrun.toml"), text.to_string(), &options)
    }

    #[test]
    fn environments_are_laid_in_order_and_each_variable_names_its_source() {
        let dir = std::env::temp_dir().join(format!("bgrun-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shared.env"), "A=shared-file\nB=shared-file\nC=shared-file\nD=shared-file\n").unwrap();
        std::fs::write(dir.join("api.env"), "C=job-file\nD=job-file\n").unwrap();
        let text = r#"
env-file = "shared.env"
[env]
B = "project"
E = "project"
[environments.production]
E = "production"
F = "production"
[jobs.api]
cmd = "x"
env-file = "api.env"
env = { D = "job" }
[jobs.api.environments.production]
F = "job-production"
[jobs.other]
cmd = "y"
"#;
        let get = |p: &Project, job: &str| p.jobs.iter().find(|j| j.name.as_deref() == Some(job)).unwrap().clone();
        let plain = parse_in(&dir, text, None).unwrap();
        let api = get(&plain, "api");
        let vars = |j: &JobSpec| -> Vec<(String, String, String)> {
            j.declared_env.iter().map(|(k, v)| (k.clone(), v.clone(), j.env_sources[k].clone())).collect()
        };
        let t = |k: &str, v: &str, s: &str| (k.to_string(), v.to_string(), s.to_string());
        assert_eq!(
            vars(&api),
            vec![
                t("A", "shared-file", "env-file shared.env"),
                t("B", "project", "[env]"),
                t("C", "job-file", "env-file api.env"),
                t("D", "job", "[jobs.api.env]"),
                t("E", "project", "[env]"),
            ]
        );
        let production = parse_in(&dir, text, Some("production")).unwrap();
        let api = get(&production, "api");
        assert_eq!(
            vars(&api)[4..],
            [
                t("E", "production", "[environments.production]"),
                t("F", "job-production", "[jobs.api.environments.production]")
            ]
        );
        assert_eq!(get(&production, "other").declared_env["F"], "production");
        let staging = parse_in(&dir, text, Some("staging")).unwrap_err();
        let views = staging.views();
        assert_eq!(views[0].message, "there is no environment `staging` in this file");
        assert_eq!(views[0].hint.as_deref(), Some("this file has: production"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replicas_are_named_copies_and_dependents_wait_for_all_of_them() {
        let p = parse_str("[jobs.api]\ncmd='x'\nreplicas=3\n[jobs.web]\ncmd='y'\nafter={ api = 'started' }\n").unwrap();
        let names: Vec<String> = p.jobs.iter().map(|j| j.name.clone().unwrap()).collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names.last().map(String::as_str), Some("web"), "{names:?}");
        for i in 1..=3u32 {
            let copy = p.jobs.iter().find(|j| j.name == Some(format!("api.{i}"))).unwrap();
            assert_eq!(copy.replica, Some(spec::Replica { of: "api".into(), index: i - 1 }));
            assert_eq!(copy.declared_env["BGRUN_REPLICA"], (i - 1).to_string());
            assert_eq!(copy.declared_env["BGRUN_REPLICA_NUMBER"], i.to_string());
        }
        let web = &p.jobs[3];
        let deps: Vec<String> = web.after.iter().map(|d| format!("{}:{:?}", d.job, d.condition)).collect();
        assert_eq!(deps, ["api.1:Started", "api.2:Started", "api.3:Started"]);
        let found =
            problems("[jobs.api]\ncmd='x'\nreplicas=2\n[jobs.'api.2']\ncmd='y'\n[jobs.w]\ncmd='z'\nreplicas=0\n");
        let msgs: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(msgs, ["job `api.2` clashes with a copy of `api`", "`replicas` must be at least 1"], "{found:?}");
    }

    #[test]
    fn a_bad_cron_expression_is_pointed_at() {
        let found = problems("[jobs.a]\ncmd='x'\ncron = '0 3 * *'\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 3);
        assert!(found[0].1.starts_with("`cron`: \"0 3 * *\" is not a cron expression"), "{found:?}");
        assert!(found[0].2.as_deref().unwrap().contains("five fields"));
    }

    #[test]
    fn project_env_values_must_be_strings() {
        let found = problems("[env]\nPORT = 3000\n[jobs.a]\ncmd='x'\n");
        assert_eq!(found[0].0, 2);
        assert_eq!(found[0].1, "`env.PORT` must be a string");
    }

    #[test]
    fn a_settings_file_is_the_lowest_layer_and_can_be_turned_off() {
        let dir = std::env::temp_dir().join(format!("bgrun-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("production.toml"), "[server]\nport = 3000\nhost = \"0.0.0.0\"\n").unwrap();
        std::fs::write(dir.join(".config.toml"), "debug = true\n").unwrap();
        let text = "[jobs.api]\ncmd = 'x'\nconfig = 'production.toml'\nenv = { SERVER_HOST = '127.0.0.1' }\n\
                    [jobs.plain]\ncmd = 'y'\n[jobs.none]\ncmd = 'z'\nconfig = false\n";
        let p = parse_in(&dir, text, None).unwrap();
        let job = |name: &str| p.jobs.iter().find(|j| j.name.as_deref() == Some(name)).unwrap();
        let api = job("api");
        assert_eq!(api.declared_env["SERVER_PORT"], "3000");
        assert_eq!(api.env_sources["SERVER_PORT"], "config production.toml");
        assert_eq!(api.declared_env["SERVER_HOST"], "127.0.0.1", "the job's env is over the settings");
        assert_eq!(job("plain").declared_env["DEBUG"], "true", ".config.toml in the cwd by default");
        assert!(job("none").declared_env.is_empty());
        assert!(p.inputs.contains(&dir.join("production.toml")), "watched, and part of the job");
        std::fs::write(dir.join("production.toml"), "[server]\nport = = 1\n").unwrap();
        let err = parse_in(&dir, text, None).unwrap_err();
        let views = err.views();
        assert_eq!(views[0].line, Some(3), "pointed at the `config` key");
        let at = format!("{}:2:", dir.join("production.toml").display());
        assert!(views[0].message.contains(&at), "{}", views[0].message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
