//! Job specs: everything that says how a job should run. Pure data plus validation; no I/O.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Never,
    OnCrash,
    Always,
}

/// When a dependency (`after`) lets a job start. compose's `service_started`, `service_healthy`
/// and `service_completed_successfully` are `started`, `ready` and `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// It has a process (its current run was started).
    Started,
    /// Its readiness checks passed, or it exited 0 (a one-shot: only once it exited 0).
    #[default]
    Ready,
    /// It exited 0.
    Completed,
    /// It is ready, or its run has ended, however it ended (`bgrun run --after NAME`).
    ReadyOrEnded,
}

impl Condition {
    pub const ALL: [Condition; 4] =
        [Condition::Started, Condition::Ready, Condition::Completed, Condition::ReadyOrEnded];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Completed => "completed",
            Condition::ReadyOrEnded => "ready-or-ended",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A job this one starts after, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredDependency")]
pub struct Dependency {
    pub job: String,
    pub condition: Condition,
}

/// A dependency as stored: today's shape, or the bare name of specs from before conditions
/// (which meant ready, or exited 0: `ready`), so jobs recorded by an earlier daemon still load.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredDependency {
    Name(String),
    Full {
        job: String,
        #[serde(default)]
        condition: Condition,
    },
}

impl From<StoredDependency> for Dependency {
    fn from(stored: StoredDependency) -> Self {
        match stored {
            StoredDependency::Name(job) => Dependency::new(job, Condition::Ready),
            StoredDependency::Full { job, condition } => Dependency::new(job, condition),
        }
    }
}

impl Dependency {
    pub fn new(job: impl Into<String>, condition: Condition) -> Dependency {
        Dependency { job: job.into(), condition }
    }

    /// `NAME` or `NAME:CONDITION`, as `--after` takes it; a bare name waits for the job to be
    /// ready or to have ended.
    pub fn parse_flag(s: &str) -> std::result::Result<Dependency, String> {
        match s.split_once(':') {
            None => Ok(Dependency::new(s, Condition::ReadyOrEnded)),
            Some((job, cond)) => match Condition::parse(cond) {
                Some(condition) => Ok(Dependency::new(job, condition)),
                None => Err(format!("{cond:?} is not a condition; use started, ready, completed or ready-or-ended")),
            },
        }
    }
}

/// How a new spec replaces a running job (`update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Update {
    /// The new run starts beside the old one, which is stopped once the new one is ready; a new
    /// run that fails is stopped and the old one goes on (the default for a job with `listen`).
    StartFirst,
    /// The old run stops, then the new one starts (the default otherwise).
    StopFirst,
}

/// Which processes a stop signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KillMode {
    /// Every process of the job, including those that started a session of their own.
    #[default]
    Group,
    /// Only the main process, so it can shut its children down itself; whatever is left at the
    /// end of the grace is killed.
    Main,
}

/// The container a job's command runs, as bgrun supervises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRun {
    /// The engine's program as the command names it (`docker`, `/usr/bin/podman`).
    pub engine: String,
    /// The container's name: the command's `--name`, or `bgrun-<project>-<job>`.
    pub name: String,
    /// The command names it itself (bgrun adds `--name` otherwise).
    pub named: bool,
}

/// Where `docker run` or `podman run` (the engine by any path) starts among a command's words.
pub fn engine_run_at(words: &[String]) -> Option<usize> {
    words.windows(2).position(|w| {
        let program = w[0].rsplit('/').next().unwrap_or_default();
        matches!(program, "docker" | "podman") && w[1] == "run"
    })
}

impl JobSpec {
    /// The container this job runs: its command's words hold `docker run` or `podman run`
    /// (after `sudo`, or inside a shell line), unless `container = false`.
    pub fn container_run(&self) -> Option<ContainerRun> {
        if self.container == Some(false) {
            return None;
        }
        let words = self.words();
        let at = engine_run_at(&words)?;
        let named = words[at + 2..].iter().enumerate().find_map(|(i, w)| match w.strip_prefix("--name") {
            Some("") => words.get(at + 3 + i).cloned(),
            Some(rest) => rest.strip_prefix('=').map(String::from),
            None => None,
        });
        let default = || {
            let job = self.name.as_deref().unwrap_or("job");
            match &self.project {
                Some(project) => format!("bgrun-{project}-{job}"),
                None => format!("bgrun-{job}"),
            }
        };
        Some(ContainerRun { engine: words[at].clone(), named: named.is_some(), name: named.unwrap_or_else(default) })
    }

    /// For a container job, `ready-when = "healthy"` means the container's own health check
    /// passes (the image's HEALTHCHECK, or `--health-cmd`), not a line of output.
    pub fn resolve_container_readiness(&mut self) {
        let Some(container) = self.container_run() else { return };
        if self.ready.log_contains != ["healthy"] {
            return;
        }
        self.ready.log_contains.clear();
        let (engine, name) = (&container.engine, &container.name);
        self.ready.exec = Some(if engine.ends_with("podman") {
            // Podman runs health checks from systemd timers, absent in many places: run it now.
            format!("{engine} healthcheck run {name}")
        } else {
            format!("test \"$({engine} inspect -f '{{{{.State.Health.Status}}}}' {name})\" = healthy")
        });
    }
}

/// A command line that is one command the shell may exec: no lists, pipes, subshells or
/// compound commands, and no leading assignment or builtin.
fn is_plain_command(line: &str) -> bool {
    const NOT_A_PROGRAM: [&str; 16] = [
        "if", "for", "while", "until", "case", "{", "!", "exec", "cd", "export", "set", "source", ".", "eval", "time",
        "trap",
    ];
    let first = line.split_whitespace().next().unwrap_or("");
    !line.contains([';', '&', '|', '(', ')', '\n', '`']) && !first.contains('=') && !NOT_A_PROGRAM.contains(&first)
}

/// An address a job's socket listens on (`listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl ListenAddress {
    pub fn parse(s: &str) -> std::result::Result<ListenAddress, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            return match path.is_absolute() && path.as_os_str().len() < 108 {
                true => Ok(ListenAddress::Unix(path)),
                false => Err(format!("{s:?}: a unix socket needs an absolute path shorter than 108 bytes")),
            };
        }
        s.parse().map(ListenAddress::Tcp).map_err(|_| {
            format!("{s:?} is not an address to listen on: write HOST:PORT (127.0.0.1:8080, [::1]:8080, 0.0.0.0:80) or unix:/PATH")
        })
    }
}

/// A signal by name (`SIGINT`, `INT`, `int`), for `stop-signal`.
pub fn parse_signal(s: &str) -> std::result::Result<nix::sys::signal::Signal, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().map_err(|_| format!("{s:?} is not a signal name; use e.g. SIGINT, SIGQUIT, SIGTERM"))
}

/// How far the restart policy goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarts {
    /// Crashes in a row (each within `min_uptime` of its start) after which the job stays crashed.
    pub max: u32,
    /// A run that lasts this long is stable: the next crash starts a new count.
    #[serde(with = "duration_ms")]
    pub min_uptime: Duration,
    /// A constant delay before each restart instead of the doubling `backoff`.
    #[serde(default, with = "opt_duration_ms", skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Exit codes that mean the program stopped itself on purpose: a clean end, never restarted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_exit_codes: Vec<i32>,
}

pub const DEFAULT_MAX_RESTARTS: u32 = 10;
pub const DEFAULT_MIN_UPTIME: Duration = Duration::from_secs(10);

impl Default for Restarts {
    fn default() -> Self {
        Restarts { max: DEFAULT_MAX_RESTARTS, min_uptime: DEFAULT_MIN_UPTIME, delay: None, stop_exit_codes: vec![] }
    }
}

/// Files that get a copy of the job's output, as written (relative to the job's cwd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Mirror {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<PathBuf>,
    /// Both streams in one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// Each line starts with the time it was written.
    #[serde(default)]
    pub timestamps: bool,
}

/// How big the job's own log (`output.log`) may grow before it is rotated, and how many files of
/// it are kept; unset, the daemon's defaults ([`DEFAULT_LOG_MAX_SIZE_MB`], [`DEFAULT_LOG_MAX_FILES`],
/// or `BGRUN_LOG_MAX_SIZE` / `BGRUN_LOG_MAX_FILES` in the daemon's environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
}

pub const DEFAULT_LOG_MAX_SIZE_MB: u64 = 100;
pub const DEFAULT_LOG_MAX_FILES: u32 = 5;

impl LogLimits {
    pub fn is_unset(&self) -> bool {
        *self == LogLimits::default()
    }

    /// The limits the shim applies: the job's, else the daemon's.
    pub fn resolve(&self) -> crate::logs::writer::Limits {
        let env_size = || std::env::var("BGRUN_LOG_MAX_SIZE").ok().and_then(|s| parse_size_mb(&s).ok());
        let env_files = || std::env::var("BGRUN_LOG_MAX_FILES").ok().and_then(|s| s.trim().parse().ok());
        let mb = self.max_size_mb.or_else(env_size).unwrap_or(DEFAULT_LOG_MAX_SIZE_MB);
        let files: u32 = self.max_files.or_else(env_files).unwrap_or(DEFAULT_LOG_MAX_FILES);
        crate::logs::writer::Limits { max_size: mb.saturating_mul(1024 * 1024), max_files: files.max(1) }
    }
}

/// How a job is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Stopping {
    /// The signal a stop sends (default SIGTERM), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// A command run instead of sending the signal (through `sh -c`, in the job's cwd and env).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default)]
    pub kill_mode: KillMode,
}

impl Stopping {
    /// What a stop does first, in words: "SIGTERM to the process group".
    pub fn describe(&self) -> String {
        if let Some(command) = &self.command {
            return format!("stop command `{command}`");
        }
        let signal = self.signal.as_deref().unwrap_or("SIGTERM");
        match self.kill_mode {
            KillMode::Group => format!("{signal} to the process group"),
            KillMode::Main => format!("{signal} to the main process"),
        }
    }
}

/// Conditions that must all pass before a job counts as Ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Readiness {
    pub log_contains: Vec<String>,
    pub log_regex: Vec<String>,
    pub port: Option<u16>,
    pub url: Option<String>,
    pub file: Option<PathBuf>,
    /// Ready on `READY=1` over the systemd notify protocol (`NOTIFY_SOCKET`).
    pub notify: bool,
    /// Ready when this command (through `sh -c`, in the job's cwd and environment) exits 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
}

impl Readiness {
    pub fn is_empty(&self) -> bool {
        self.log_contains.is_empty()
            && self.log_regex.is_empty()
            && self.port.is_none()
            && self.url.is_none()
            && self.file.is_none()
            && self.exec.is_none()
            && !self.notify
    }

    /// The checks ask only a port, a URL or a file, which two runs sharing their listening
    /// sockets (and working directory) both answer: they cannot tell a new run is ready while the
    /// old one serves.
    pub fn answered_by_either_run(&self) -> bool {
        (self.port.is_some() || self.url.is_some() || self.file.is_some())
            && self.log_contains.is_empty()
            && self.log_regex.is_empty()
            && self.file.is_none()
            && self.exec.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub url: Option<String>,
    pub port: Option<u16>,
    /// Healthy when this command (through `sh -c`, in the job's cwd and environment) exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    pub threshold: u32,
    /// How long one check may take before it counts as failed.
    #[serde(with = "duration_ms", default = "default_health_timeout")]
    pub timeout: Duration,
    /// After the job became ready, failures are not counted for this long (a slow boot).
    #[serde(with = "duration_ms", default)]
    pub start_period: Duration,
}

pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

fn default_health_timeout() -> Duration {
    DEFAULT_HEALTH_TIMEOUT
}

/// Whole seconds (`10`) or a duration (`500ms`, `2s`), as the file takes them.
pub fn parse_seconds_or_duration(s: &str) -> std::result::Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => parse_duration(s),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pty {
    pub cols: u16,
    pub rows: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: Option<String>,
    pub workspace: Option<String>,
    /// The command as the user gave it.
    pub cmd: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the job (the caller's environment plus `--env`).
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub ready: Readiness,
    #[serde(default)]
    pub after: Vec<Dependency>,
    /// Expected to finish: ready (for `up` and dependents) only once it exited 0, and a clean
    /// exit is its success.
    #[serde(default)]
    pub oneshot: bool,
    #[serde(default)]
    pub stop: Stopping,
    /// The program forks into the background and its first process exits 0 (`pg_ctl start`,
    /// `redis-server --daemonize yes`): the job is the process it leaves behind.
    #[serde(default)]
    pub daemonizes: bool,
    /// Where a daemonizing program writes its daemon's pid (relative to the job's cwd); without
    /// one, the job is the one process the first leaves behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<PathBuf>,
    #[serde(default)]
    pub pty: Option<Pty>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(with = "duration_ms")]
    pub backoff: Duration,
    #[serde(default)]
    pub restarts: Restarts,
    /// `up` leaves the job alone unless it is named (or a job it starts needs it).
    #[serde(default)]
    pub disabled: bool,
    /// Files that get a copy of the job's output.
    #[serde(default)]
    pub mirror: Mirror,
    /// How big bgrun's log of the job may grow.
    #[serde(default, skip_serializing_if = "LogLimits::is_unset")]
    pub log_limits: LogLimits,
    #[serde(default)]
    pub max_rss_mb: Option<u64>,
    #[serde(default, with = "opt_duration_ms")]
    pub max_runtime: Option<Duration>,
    #[serde(default)]
    pub allocate_ports: Vec<String>,
    /// Sockets bgrun binds and hands to every run of the job as fds 3.. (systemd's socket
    /// activation: `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`): `127.0.0.1:8080`, `[::1]:8080`,
    /// `unix:/run/app.sock`. They outlive each run, so a restart refuses no connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(with = "duration_ms")]
    pub grace: Duration,
    /// The project (bgrun.toml) that owns the job; None for jobs started with `bgrun run`.
    #[serde(default)]
    pub project: Option<String>,
    /// The environment the user declared (file `env` and `env-file`, or `--env`), as opposed to
    /// the environment inherited from the caller. Only this part decides whether a job is replaced.
    #[serde(default)]
    pub declared_env: BTreeMap<String, String>,
    /// Globs (relative to cwd) whose changes restart the job under `bgrun up --watch`.
    #[serde(default)]
    pub watch: Vec<String>,
    /// More globs to ignore, on top of `.git`, `target` and `node_modules`.
    #[serde(default)]
    pub watch_ignore: Vec<String>,
    /// Restart this job when a job it starts after is replaced.
    #[serde(default)]
    pub restart_with_dependencies: bool,
    /// The id the CLI gave the `run` that created this spec: a `run` retried after the daemon died
    /// under it answers with the job the first attempt created instead of creating a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Where each declared variable came from (`[env]`, `environments.production`, an env-file,
    /// `--env`), for `bgrun env`; a variable not named here was inherited from the caller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_sources: BTreeMap<String, String>,
    /// This job is one copy of a job with `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<Replica>,
    /// The schedule on which a running job is restarted, or a one-shot job run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Whether the command runs a container (`docker run …`, `podman run …`) bgrun supervises
    /// as such: None detects it from the command, false never, true requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// Fast-forward the git checkout holding the job's cwd from its upstream before each start
    /// (with `deploy`'s refusals: a refusal fails the start).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fetch: bool,
    /// How a new spec replaces a running run (None: start-first with `listen`, else stop-first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    /// `--force`: before this start, stop any process of the user holding the job's ports. Taken
    /// off the spec when it is applied (it is about one command, not the job).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// One of the N copies of a job with `replicas = N`: job `api.2` is `{ of: "api", index: 1 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The name of the job in the file; `api` names all its copies at once.
    pub of: String,
    /// 0-based (`BGRUN_REPLICA`); the name carries `index + 1`.
    pub index: u32,
}

/// How two specs of the same job differ: fields that shape the process (so the job must be
/// replaced), and fields bgrun applies itself (updated in place, no restart). Field names are the
/// keys of `bgrun.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecDiff {
    pub replace: Vec<&'static str>,
    pub update: Vec<&'static str>,
}

impl SpecDiff {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.update.is_empty()
    }
}

/// The fingerprint of a job is everything that shapes its process: the resolved command, the
/// working directory, the declared environment (env-file contents included) and the terminal.
pub fn diff(old: &JobSpec, new: &JobSpec) -> SpecDiff {
    let mut d = SpecDiff::default();
    let mut replace = |name, changed: bool| {
        if changed {
            d.replace.push(name)
        }
    };
    replace("cmd", old.argv() != new.argv());
    replace("cwd", old.cwd != new.cwd);
    replace("env", old.declared_env != new.declared_env);
    replace("pty", old.pty != new.pty);
    replace("allocate-port", old.allocate_ports != new.allocate_ports);
    replace("listen", old.listen != new.listen);
    replace("daemonizes", old.daemonizes != new.daemonizes || old.pidfile != new.pidfile);
    // The shim opens the mirror files when it starts: a change needs a new run.
    replace("log", old.mirror != new.mirror);
    // So does the shim's rotation of bgrun's own log.
    replace("log-max-size", old.log_limits.max_size_mb != new.log_limits.max_size_mb);
    replace("log-max-files", old.log_limits.max_files != new.log_limits.max_files);
    let mut update = |name, changed: bool| {
        if changed {
            d.update.push(name)
        }
    };
    update("ready-when", old.ready != new.ready);
    update("after", old.after != new.after);
    update("oneshot", old.oneshot != new.oneshot);
    update("stop", old.stop != new.stop);
    update("restart", old.restart != new.restart || old.backoff != new.backoff || old.restarts != new.restarts);
    update("disabled", old.disabled != new.disabled);
    update("max-rss", old.max_rss_mb != new.max_rss_mb);
    update("max-runtime", old.max_runtime != new.max_runtime);
    update("health", old.health != new.health);
    update("grace", old.grace != new.grace);
    update("workspace", old.workspace != new.workspace);
    update("watch", old.watch != new.watch || old.watch_ignore != new.watch_ignore);
    update("restart-with-dependencies", old.restart_with_dependencies != new.restart_with_dependencies);
    update("cron", old.cron != new.cron);
    update("fetch", old.fetch != new.fetch);
    update("update", old.update != new.update);
    d
}

pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(2);
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

impl JobSpec {
    /// The argv actually executed: one argument containing whitespace runs through `sh -c`
    /// (so `bgrun run "npm run dev"` works as typed); anything else is executed directly.
    pub fn argv(&self) -> Vec<String> {
        match self.cmd.as_slice() {
            // A job handed sockets must be the very process the shell starts (LISTEN_PID names
            // it): the shell execs a plain command line instead of forking it.
            [one] if one.contains(char::is_whitespace) && !self.listen.is_empty() && is_plain_command(one) => {
                vec!["sh".into(), "-c".into(), format!("exec {one}")]
            }
            [one] if one.chars().any(char::is_whitespace) => {
                vec!["sh".into(), "-c".into(), one.clone()]
            }
            _ => self.cmd.clone(),
        }
    }

    /// The ports the job says it listens on (its readiness and health checks, a URL on this
    /// machine), which a new run must find free.
    pub fn declared_ports(&self) -> Vec<u16> {
        let local_url_port = |url: &str| {
            let rest = url.split_once("://")?.1;
            let host_port = rest.split(['/', '?', '#']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0").then(|| port.parse().ok()).flatten()
        };
        let health = self.health.as_ref();
        let mut ports: Vec<u16> = [
            self.ready.port,
            health.and_then(|h| h.port),
            self.ready.url.as_deref().and_then(local_url_port),
            health.and_then(|h| h.url.as_deref()).and_then(local_url_port),
        ]
        .into_iter()
        .flatten()
        .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The command's words, as `list` and `status` show them: a command line given as one string
    /// (which runs through `sh -c`) split at its spaces.
    pub fn words(&self) -> Vec<String> {
        self.word_slices().into_iter().map(String::from).collect()
    }

    /// [`Self::words`], borrowed from the spec.
    pub fn word_slices(&self) -> Vec<&str> {
        match self.cmd.as_slice() {
            [one] => one.split_whitespace().collect(),
            more => more.iter().map(String::as_str).collect(),
        }
    }

    /// Whether a new spec replaces the job's running run start-first (see [`Update`]).
    pub fn starts_first(&self) -> bool {
        match self.update {
            Some(update) => update == Update::StartFirst,
            None => !self.listen.is_empty() && self.start_first_refused().is_none(),
        }
    }

    /// Why the job cannot run two runs side by side under one supervisor: what that supervisor
    /// set up for the job (its terminal, its container's name, what it follows) cannot be shared.
    fn start_first_refused(&self) -> Option<&'static str> {
        if self.pty.is_some() {
            Some("a job in a terminal cannot run twice at once")
        } else if self.container_run().is_some() {
            Some("a container's name cannot be taken twice")
        } else if self.daemonizes {
            Some("a daemonizing job's processes cannot be told apart from its next run's")
        } else if self.ready.notify {
            Some("sd_notify cannot tell which run is ready")
        } else if self.oneshot {
            Some("a one-shot job is not replaced while it runs")
        } else if !self.listen.is_empty() && self.ready.answered_by_either_run() {
            Some(
                "behind its listening sockets a url, port or file check is answered by the old run \
                 too: add a check only the new run passes (ready-when, ready-when-regex, ready-when-exec)",
            )
        } else {
            None
        }
    }

    /// The names of the jobs this one starts after.
    pub fn after_names(&self) -> Vec<String> {
        self.after.iter().map(|d| d.job.clone()).collect()
    }

    /// Every problem with the spec, so the user sees them all at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.cmd.is_empty() || self.cmd[0].trim().is_empty() {
            problems.push("the command is empty".to_string());
        }
        if let Some(name) = &self.name
            && let Err(e) = validate_name(name)
        {
            problems.push(e.message);
        }
        if let Some(ws) = &self.workspace
            && ws.is_empty()
        {
            problems.push("the workspace name is empty".to_string());
        }
        for dep in &self.after {
            if let Err(e) = validate_name(&dep.job) {
                problems.push(format!("--after: {}", e.message));
            }
        }
        if self.ready.port == Some(0) || self.health.as_ref().is_some_and(|h| h.port == Some(0)) {
            problems.push("port 0 is not a port a server listens on".to_string());
        }
        if self.max_runtime.is_some_and(|d| d.is_zero()) {
            problems.push("--max-runtime must be more than zero".to_string());
        }
        if self.oneshot && !self.ready.is_empty() {
            problems.push("a one-shot job is ready once it exits 0: it takes no readiness checks".to_string());
        }
        if self.oneshot && self.restart == RestartPolicy::Always {
            problems.push("a one-shot job is done once it exits 0: restart it on-crash, not always".to_string());
        }
        if self.pidfile.is_some() && !self.daemonizes {
            problems.push("a pidfile is for a job that daemonizes: set daemonizes too".to_string());
        }
        if self.oneshot && self.daemonizes {
            problems.push("a job cannot both finish (oneshot) and daemonize".to_string());
        }
        if self.update == Some(Update::StartFirst)
            && let Some(why) = self.start_first_refused()
        {
            problems.push(format!("update = start-first: {why}"));
        }
        if self.container == Some(true) && self.container_run().is_none() {
            problems.push("container = true, but the command runs no `docker run` or `podman run`".to_string());
        }
        if let Some(cron) = &self.cron
            && let Err(e) = crate::schedule::Schedule::parse(cron)
        {
            problems.push(format!("cron: {e}"));
        }
        if let Some(signal) = &self.stop.signal
            && let Err(e) = parse_signal(signal)
        {
            problems.push(format!("stop signal: {e}"));
        }
        if self.stop.command.as_ref().is_some_and(|c| c.trim().is_empty() || c.contains('\0')) {
            problems.push("the stop command is empty or contains a NUL byte".to_string());
        }
        for pattern in &self.ready.log_regex {
            if let Err(e) = regex::Regex::new(pattern) {
                problems.push(format!("--ready-when-regex {pattern:?} is not a valid regex: {e}"));
            }
        }
        for var in &self.allocate_ports {
            if !is_env_name(var) {
                problems.push(format!("--allocate-port {var:?} is not a valid variable name"));
            }
        }
        for address in &self.listen {
            if let Err(e) = ListenAddress::parse(address) {
                problems.push(format!("--listen: {e}"));
            }
        }
        if let Some(h) = &self.health {
            if h.threshold == 0 {
                problems.push("--health-threshold must be at least 1".to_string());
            }
            if h.interval.is_zero() {
                problems.push("--health-interval must be more than zero".to_string());
            }
            if h.timeout.is_zero() {
                problems.push("--health-timeout must be more than zero".to_string());
            }
            if h.exec.as_ref().is_some_and(|c| c.trim().is_empty()) {
                problems.push("--health-check-exec is empty".to_string());
            }
        }
        if self.ready.exec.as_ref().is_some_and(|c| c.trim().is_empty()) {
            problems.push("--ready-when-exec is empty".to_string());
        }
        if let Some(p) = &self.pty
            && (p.cols == 0 || p.rows == 0)
        {
            problems.push("--cols and --rows must be at least 1".to_string());
        }
        self.validate_text(&mut problems);
        if problems.is_empty() { Ok(()) } else { Err(Error::bad_input(problems.join("; "))) }
    }

    /// What the OS itself would refuse later (exec cannot take a NUL byte, an environment key
    /// cannot hold `=`), refused now so a healthy job is never stopped for a replacement that
    /// cannot start.
    fn validate_text(&self, problems: &mut Vec<String>) {
        if self.cmd.iter().any(|a| a.contains('\0')) {
            problems.push("the command contains a NUL byte".to_string());
        }
        if !self.cwd.is_absolute() {
            problems.push(format!("the working directory {:?} is not an absolute path", self.cwd));
        }
        if self.cwd.as_os_str().as_encoded_bytes().contains(&0) {
            problems.push("the working directory contains a NUL byte".to_string());
        }
        for (key, value) in self.env.iter().chain(&self.declared_env) {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                problems.push(format!("{key:?} is not a valid environment variable name"));
            } else if value.contains('\0') {
                problems.push(format!("the value of {key} contains a NUL byte"));
            }
        }
        for pattern in self.watch.iter().chain(&self.watch_ignore) {
            if let Err(e) = globset::Glob::new(pattern) {
                problems.push(format!("watch pattern {pattern:?} is not a valid glob: {e}"));
            }
        }
        if let Some(url) = self.ready.url.iter().chain(self.health.as_ref().and_then(|h| h.url.as_ref())).next()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!("{url:?} is not an http:// or https:// URL"));
        }
        if let Some(project) = &self.project
            && validate_name(project).is_err()
        {
            problems.push(format!("invalid project name {project:?}"));
        }
    }
}

/// Every problem with the jobs of one project as a whole (each job's own spec, and names that
/// must be unique and resolvable), so a request from the socket gets the same checks as a file.
pub fn validate_project(project: &str, jobs: &[JobSpec]) -> Result<()> {
    let mut problems = Vec::new();
    if let Err(e) = validate_name(project) {
        problems.push(format!("project: {}", e.message));
    }
    let mut names = std::collections::HashSet::new();
    for job in jobs {
        let Some(name) = job.name.as_deref() else {
            problems.push("every job of a project needs a name".to_string());
            continue;
        };
        if !names.insert(name) {
            problems.push(format!("job `{name}` is defined twice"));
        }
        if job.project.as_deref() != Some(project) {
            problems.push(format!("job `{name}` does not belong to project `{project}`"));
        }
        if let Err(e) = job.validate() {
            problems.push(format!("job `{name}`: {}", e.message));
        }
    }
    for job in jobs {
        for dep in &job.after {
            if !names.contains(dep.job.as_str()) {
                problems.push(format!("`after`: there is no job `{}` in project `{project}`", dep.job));
            }
        }
    }
    if problems.is_empty() {
        let deps: std::collections::BTreeMap<String, Vec<String>> =
            jobs.iter().filter_map(|j| Some((j.name.clone()?, j.after_names()))).collect();
        for cycle in crate::graph::Graph::new(&deps).cycles() {
            problems.push(format!("dependency cycle between {}", cycle.join(", ")));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::bad_input(problems.join("; "))) }
}

/// Job names are used on command lines and in paths, so they stay plain.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!("invalid job name {name:?}"))
            .with_hint("names start with a letter or digit and contain only letters, digits, '.', '_' and '-'"))
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a humantime duration (`500ms`, `2s`, `5m`) for clap and config files.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration ({e}); use e.g. 500ms, 2s, 5m"))
}

pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// Megabytes from `512`, `512MB`, `1.5GB`, `256M`, `2G`.
pub fn parse_size_mb(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size; use e.g. 512, 512MB or 1GB"))?;
    let mb = match unit.trim() {
        "" | "M" | "MB" | "MIB" => n,
        "G" | "GB" | "GIB" => n * 1024.0,
        "K" | "KB" | "KIB" => n / 1024.0,
        _ => return Err(format!("{s:?} has an unknown unit; use MB or GB")),
    };
    if mb < 1.0 {
        return Err(format!("{s:?} is less than 1 MB"));
    }
    Ok(mb.round() as u64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web", "api-2", "x.y_z", "9lives"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "ü"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_container_is_found_in_the_command_and_named() {
        let mut spec = sample();
        spec.name = Some("db".into());
        spec.project = Some("shop".into());
        spec.cmd = vec!["docker run --rm -p 5432:5432 postgres".into()];
        let c = spec.container_run().unwrap();
        assert_eq!((c.engine.as_str(), c.name.as_str(), c.named), ("docker", "bgrun-shop-db", false));
        spec.cmd = ["sudo", "/usr/bin/podman", "run", "--name=pg", "postgres"].map(String::from).to_vec();
        let c = spec.container_run().unwrap();
        assert_eq!((c.engine.as_str(), c.name.as_str(), c.named), ("/usr/bin/podman", "pg", true));
        spec.cmd = vec!["docker ps".into()];
        assert!(spec.container_run().is_none());
        spec.container = Some(true);
        assert!(spec.validate().unwrap_err().message.contains("runs no `docker run`"));
        spec.cmd = vec!["podman run --name x img".into()];
        spec.container = Some(false);
        assert!(spec.container_run().is_none(), "turned off");
        spec.container = None;
        spec.ready.log_contains = vec!["healthy".into()];
        spec.resolve_container_readiness();
        assert_eq!(spec.ready.exec.as_deref(), Some("podman healthcheck run x"));
        assert!(spec.ready.log_contains.is_empty());
    }

    #[test]
    fn argv_uses_shell_only_for_one_spaced_argument() {
        let mut spec = sample();
        spec.cmd = vec!["npm run dev".into()];
        assert_eq!(spec.argv(), ["sh", "-c", "npm run dev"]);
        spec.cmd = vec!["sleep".into(), "10".into()];
        assert_eq!(spec.argv(), ["sleep", "10"]);
        spec.cmd = vec!["top".into()];
        assert_eq!(spec.argv(), ["top"]);
        // Handed sockets, the process the shell starts must be the server itself.
        spec.listen = vec!["127.0.0.1:8080".into()];
        spec.cmd = vec!["gunicorn -w 2 app:app".into()];
        assert_eq!(spec.argv(), ["sh", "-c", "exec gunicorn -w 2 app:app"]);
        spec.cmd = vec!["server".into()];
        assert_eq!(spec.argv(), ["server"]);
        for line in ["cd web && node app.js", "PORT=1 node app.js", "exec node app.js", "a; b", "if x; then y; fi"] {
            spec.cmd = vec![line.into()];
            assert_eq!(spec.argv(), ["sh", "-c", line], "{line}");
        }
    }

    #[test]
    fn validation_reports_every_problem() {
        let mut spec = sample();
        spec.cmd = vec![];
        spec.name = Some("bad name".into());
        spec.ready.log_regex = vec!["(".into()];
        let err = spec.validate().unwrap_err().message;
        assert!(err.contains("empty"), "{err}");
        assert!(err.contains("bad name"), "{err}");
        assert!(err.contains("regex"), "{err}");
    }

    #[test]
    fn specs_stored_before_conditions_still_load() {
        let mut old = serde_json::to_value(sample()).unwrap();
        old["after"] = serde_json::json!(["db"]);
        old.as_object_mut().unwrap().remove("stop");
        let spec: JobSpec = serde_json::from_value(old).unwrap();
        assert_eq!(spec.after, vec![Dependency::new("db", Condition::Ready)]);
        assert_eq!(Dependency::parse_flag("db"), Ok(Dependency::new("db", Condition::ReadyOrEnded)));
        assert_eq!(Dependency::parse_flag("m:completed"), Ok(Dependency::new("m", Condition::Completed)));
        assert!(Dependency::parse_flag("m:finished").is_err());
        assert_eq!(parse_signal("int").map(|s| s.as_str()), Ok("SIGINT"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mb("512"), Ok(512));
        assert_eq!(parse_size_mb("512MB"), Ok(512));
        assert_eq!(parse_size_mb("1GB"), Ok(1024));
        assert_eq!(parse_size_mb("1.5g"), Ok(1536));
        assert!(parse_size_mb("lots").is_err());
        assert!(parse_size_mb("5TB").is_err());
        assert!(parse_size_mb("0").is_err());
    }

    pub(crate) fn sample() -> JobSpec {
        JobSpec {
            name: None,
            workspace: None,
            cmd: vec!["true".into()],
            cwd: "/".into(),
            env: BTreeMap::new(),
            ready: Readiness::default(),
            after: vec![],
            oneshot: false,
            stop: Stopping::default(),
            daemonizes: false,
            pidfile: None,
            pty: None,
            restart: RestartPolicy::Never,
            backoff: DEFAULT_BACKOFF,
            restarts: Restarts::default(),
            disabled: false,
            mirror: Mirror::default(),
            log_limits: LogLimits::default(),
            max_rss_mb: None,
            max_runtime: None,
            allocate_ports: vec![],
            listen: vec![],
            health: None,
            grace: DEFAULT_GRACE,
            project: None,
            declared_env: BTreeMap::new(),
            watch: vec![],
            watch_ignore: vec![],
            restart_with_dependencies: false,
            request_id: None,
            env_sources: BTreeMap::new(),
            replica: None,
            cron: None,
            container: None,
            fetch: false,
            update: None,
            force: false,
        }
    }

    #[test]
    fn diff_separates_replace_from_update() {
        let a = sample();
        let mut b = sample();
        assert!(diff(&a, &b).is_empty());
        b.env.insert("INHERITED".into(), "x".into());
        assert!(diff(&a, &b).is_empty(), "the inherited environment does not shape the fingerprint");
        b.declared_env.insert("PORT".into(), "1".into());
        b.health = Some(Health {
            url: None,
            port: Some(1),
            exec: None,
            interval: Duration::from_secs(1),
            threshold: 1,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            start_period: Duration::ZERO,
        });
        let d = diff(&a, &b);
        assert_eq!(d.replace, vec!["env"]);
        assert_eq!(d.update, vec!["health"]);
        // The same command written as one shell line or as argv is the same process.
        let mut c = sample();
        c.cmd = vec!["sleep 5".into()];
        let mut e = sample();
        e.cmd = vec!["sh".into(), "-c".into(), "sleep 5".into()];
        assert!(diff(&c, &e).is_empty());
    }
}
