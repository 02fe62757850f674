//! The shape of `bgrun.toml`. These types are the single source of truth for the file: the JSON
//! schema in `schemas/` is generated from them, and the loader's list of known keys comes from
//! that schema. Every `bgrun run` flag has a key here, in kebab-case.

use crate::spec::{Condition, Dependency, KillMode, RestartPolicy, Update};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A project's `bgrun.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "bgrun.toml", description = "The jobs of a project, as `bgrun up` runs them.")]
pub struct ProjectFile {
    #[serde(default)]
    pub project: ProjectTable,
    /// Environment variables for every job of the project (a job's own `env` wins).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files of KEY=VALUE lines (relative to the file) for every job, read when a job starts.
    pub env_file: Option<OneOrMany>,
    /// Named sets of variables laid over every job's environment when selected with
    /// `bgrun up --env <name>` (PM2's `env_<name>`): `[environments.production]`.
    #[serde(default)]
    pub environments: BTreeMap<String, BTreeMap<String, String>>,
    /// One table per job: `[jobs.<name>]`.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobTable>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProjectTable {
    /// The project's name (default: the name of the directory holding the file). Jobs are
    /// addressed as `<project>/<job>` where a name alone is ambiguous.
    pub name: Option<String>,
}

/// One string, or a list of them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The jobs one starts after: a name or a list of names (each must be ready, or have exited 0),
/// or a table naming the condition for each: `{ db = "ready", migrate = "completed" }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum After {
    One(String),
    Many(Vec<String>),
    Conditions(BTreeMap<String, Condition>),
}

impl After {
    pub fn dependencies(&self) -> Vec<Dependency> {
        match self {
            After::One(name) => vec![Dependency::new(name, Condition::Ready)],
            After::Many(names) => names.iter().map(|n| Dependency::new(n, Condition::Ready)).collect(),
            After::Conditions(map) => map.iter().map(|(n, c)| Dependency::new(n, *c)).collect(),
        }
    }
}

/// A command: one string runs through `sh -c`; a list runs directly.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum Command {
    Line(String),
    Argv(Vec<String>),
}

/// A settings file to read as environment variables, or `false` for none.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum Config {
    File(String),
    /// `false`: no settings file, not even `.config.toml`; `true` is the default.
    Use(bool),
}

/// A whole number of megabytes, or a size with a unit: `"512MB"`, `"1GB"`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size {
    Megabytes(u64),
    Text(String),
}

/// Whole seconds, or a duration: `"500ms"`, `"10s"`, `"5m"`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum Seconds {
    Whole(u64),
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobTable {
    /// The command.
    pub cmd: Command,
    /// Working directory, relative to the file (default: the file's directory).
    pub cwd: Option<String>,
    /// Environment variables for the job.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files of KEY=VALUE lines (relative to the file), read when the job starts; their contents
    /// count as part of the job, so editing them replaces it.
    pub env_file: Option<OneOrMany>,
    /// A TOML settings file (relative to this file) whose values become environment variables:
    /// `[server] port = 3000` is SERVER_PORT=3000. Without it, `.config.toml` in the job's cwd is
    /// read if there is one; `false` reads none. Editing the file replaces the job.
    pub config: Option<Config>,
    /// This job's variables for a named environment, laid over its `env` when selected with
    /// `bgrun up --env <name>`: `[jobs.api.environments.production]`.
    #[serde(default)]
    pub environments: BTreeMap<String, BTreeMap<String, String>>,
    /// Run this many copies of the job, named `<job>.1` … `<job>.N`, each with `BGRUN_REPLICA`
    /// (0-based) and `BGRUN_REPLICA_NUMBER` (1-based) and ports of its own.
    #[schemars(range(min = 1))]
    pub replicas: Option<u32>,
    /// A cron expression (5 fields, or 6 with seconds first): a running job is restarted on this
    /// schedule; a one-shot job is run on it.
    pub cron: Option<String>,
    /// Group jobs for `list`, `kill` and `clean`.
    pub workspace: Option<String>,
    /// Jobs that must be ready (or have exited 0) before this one starts, or a table of
    /// job = condition: started, ready, completed or ready-or-ended.
    pub after: Option<After>,
    /// The job is expected to finish: it counts as ready once it exits 0 (`up` waits for that),
    /// and its clean exit is its success.
    #[serde(default)]
    pub oneshot: bool,
    /// The program forks into the background and its first process exits 0 (`pg_ctl start`,
    /// `redis-server --daemonize yes`): the job is the process it leaves behind.
    #[serde(default)]
    pub daemonizes: bool,
    /// Where a daemonizing program writes its daemon's pid (relative to the job's cwd); without
    /// one, the job is the one process the first leaves behind.
    pub pidfile: Option<String>,
    /// The signal that asks the job to stop (default SIGTERM), e.g. SIGINT for postgres, SIGQUIT
    /// for nginx.
    pub stop_signal: Option<String>,
    /// A command that stops the job, run (through sh -c, in its cwd and environment) instead of
    /// sending the signal; the grace and SIGKILL still follow.
    pub stop_command: Option<String>,
    /// group (default): the stop signal goes to every process of the job; main: only to its main
    /// process, and whatever is left after the grace is killed.
    pub kill_mode: Option<KillMode>,
    /// Ready when a line of output contains this text (all must appear).
    pub ready_when: Option<OneOrMany>,
    /// Ready when a line of output matches this regex (all must match).
    pub ready_when_regex: Option<OneOrMany>,
    /// Ready when localhost:PORT accepts TCP connections.
    pub ready_when_port: Option<u16>,
    /// Ready when GET URL answers 2xx.
    pub ready_when_url: Option<String>,
    /// Ready when this file exists (relative to the job's cwd).
    pub ready_when_file: Option<String>,
    /// Ready when the job sends READY=1 to $NOTIFY_SOCKET.
    #[serde(default)]
    pub ready_when_notify: bool,
    /// Ready when this command (through sh -c, in the job's cwd and environment) exits 0, e.g.
    /// `pg_isready -h localhost`.
    pub ready_when_exec: Option<String>,
    /// How long to wait for readiness (default "60s"); the job keeps running after.
    pub ready_timeout: Option<Seconds>,
    /// never (default), on-crash or always.
    pub restart: Option<RestartPolicy>,
    /// First restart delay, doubling per consecutive crash (default "2s").
    pub backoff: Option<Seconds>,
    /// Restarts after crashes in a row (each within `min-uptime` of its start) before the job
    /// stays crashed (default 10).
    pub max_restarts: Option<u32>,
    /// A run that lasts this long is stable: the next crash starts a new count (default "10s").
    pub min_uptime: Option<Seconds>,
    /// A constant delay before each restart, instead of the doubling `backoff`.
    pub restart_delay: Option<Seconds>,
    /// Exit codes that mean the program stopped itself on purpose: never restarted.
    #[serde(default)]
    pub stop_exit_codes: Vec<i32>,
    /// A file (relative to the job's cwd) that gets a copy of the job's stdout, as written.
    pub stdout: Option<String>,
    /// A file that gets a copy of the job's stderr, as written.
    pub stderr: Option<String>,
    /// A file that gets a copy of both streams, as written.
    pub log: Option<String>,
    /// In those files, each line starts with the time it was written.
    #[serde(default)]
    pub log_timestamps: bool,
    /// Rotate bgrun's log of the job (`output.log`) when it reaches this size (MB, or e.g.
    /// "512MB", "1GB"; default 100 MB).
    pub log_max_size: Option<Size>,
    /// How many files of bgrun's log of the job are kept, the current one included (default 5).
    #[schemars(range(min = 1))]
    pub log_max_files: Option<u32>,
    /// `bgrun up` leaves this job alone unless it is named, or a job it starts needs it.
    #[serde(default)]
    pub disabled: bool,
    /// Kill the job when its process tree uses more memory than this.
    pub max_rss: Option<Size>,
    /// Kill the job after it has run this long.
    pub max_runtime: Option<Seconds>,
    /// Environment variables to fill with free TCP ports.
    pub allocate_port: Option<OneOrMany>,
    /// Sockets bgrun binds once and hands to every run as fds 3.. (systemd socket activation:
    /// LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES): "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock".
    /// They outlive every run and daemon restart; all replicas of a job share them.
    pub listen: Option<OneOrMany>,
    /// Probe this URL for liveness once ready.
    pub health_check_url: Option<String>,
    /// Probe this localhost TCP port for liveness once ready.
    pub health_check_port: Option<u16>,
    /// Probe with this command once ready: healthy when it exits 0.
    pub health_check_exec: Option<String>,
    /// How long one health check may take before it counts as failed (default "5s").
    pub health_timeout: Option<Seconds>,
    /// After the job became ready, health check failures are not counted for this long (default 0).
    pub health_start_period: Option<Seconds>,
    /// Time between health checks (default 10 seconds).
    pub health_interval: Option<Seconds>,
    /// Consecutive failed health checks before the job is killed (default 3).
    pub health_threshold: Option<u32>,
    /// Run in a pseudo-terminal.
    #[serde(default)]
    pub pty: bool,
    /// PTY width (default 80).
    #[schemars(range(min = 1))]
    pub cols: Option<u16>,
    /// PTY height (default 24).
    #[schemars(range(min = 1))]
    pub rows: Option<u16>,
    /// Time between the stop signal and SIGKILL when the job is stopped (default "5s").
    pub grace: Option<Seconds>,
    /// Globs, relative to the job's cwd, whose changes restart the job under `bgrun up --watch`.
    #[serde(default)]
    pub watch: Vec<String>,
    /// Globs to ignore on top of `.git`, `target` and `node_modules`.
    #[serde(default)]
    pub watch_ignore: Vec<String>,
    /// Restart this job when a job it starts after is replaced (default false).
    #[serde(default)]
    pub restart_with_dependencies: bool,
    /// The command runs a container (`docker run …`/`podman run …`) that bgrun supervises as such
    /// (detected from the command by default; false turns that off, true requires it).
    pub container: Option<bool>,
    /// Fast-forward the git checkout holding the job's cwd from its upstream before each start,
    /// refusing (and failing the start) as `bgrun deploy` refuses.
    #[serde(default)]
    pub fetch: bool,
    /// How a new spec replaces the running job: start-first (the new run starts beside the old,
    /// which is stopped once the new one is ready; the default for a job with `listen`) or
    /// stop-first (the default otherwise).
    pub update: Option<Update>,
    /// The container image the job runs in when exported (`bgrun export compose|kubernetes`), its
    /// command run inside it; bgrun itself ignores it.
    pub image: Option<String>,
}

/// The generated JSON schema of `bgrun.toml`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ProjectFile)).unwrap_or_default()
}

/// The keys a `[jobs.<name>]` table may have, read from the schema so they cannot drift apart.
pub fn job_keys() -> Vec<String> {
    let schema = schemars::schema_for!(JobTable);
    let value = serde_json::to_value(schema).unwrap_or_default();
    value["properties"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}
