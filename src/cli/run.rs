use super::Output;
use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::short_id;
use crate::spec::{Health, JobSpec, Pty, Readiness, RestartPolicy, parse_duration};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name the job (a second `run --name X` returns X while it is alive).
    #[arg(long)]
    pub name: Option<String>,
    /// Group jobs for batch operations (default: $BGR_GROUP, the earlier bgrun's variable).
    #[arg(long)]
    pub workspace: Option<String>,
    /// Working directory (default: the current directory).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// A TOML settings file whose values become environment variables ([server] port = 3000 is
    /// SERVER_PORT=3000); default: .config.toml in the job's cwd, if there is one.
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Read no settings file, not even .config.toml.
    #[arg(long)]
    pub no_config: bool,
    /// Extra environment variable, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Ready when a log line contains this text (repeatable).
    #[arg(long)]
    pub ready_when: Vec<String>,
    /// Ready when a log line matches this regex (repeatable).
    #[arg(long)]
    pub ready_when_regex: Vec<String>,
    /// Ready when localhost:PORT accepts TCP connections.
    #[arg(long)]
    pub ready_when_port: Option<u16>,
    /// Ready when GET URL answers 2xx.
    #[arg(long)]
    pub ready_when_url: Option<String>,
    /// Ready when this file exists.
    #[arg(long)]
    pub ready_when_file: Option<PathBuf>,
    /// Ready when the job sends READY=1 to $NOTIFY_SOCKET (the systemd notify protocol).
    #[arg(long)]
    pub ready_when_notify: bool,
    /// Ready when this command (through sh -c, in the job's cwd and environment) exits 0.
    #[arg(long)]
    pub ready_when_exec: Option<String>,
    /// Give up waiting for readiness after this long (the job keeps running).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
    /// Start once this job is ready or has ended; NAME:CONDITION to say when instead: started,
    /// ready, completed (exited 0) or ready-or-ended (repeatable).
    #[arg(long, value_name = "NAME[:CONDITION]", value_parser = crate::spec::Dependency::parse_flag)]
    pub after: Vec<crate::spec::Dependency>,
    /// The job is expected to finish: ready once it exits 0, and a clean exit is its success.
    #[arg(long)]
    pub oneshot: bool,
    /// The program forks into the background and its first process exits 0: the job is the
    /// process it leaves behind.
    #[arg(long)]
    pub daemonizes: bool,
    /// Where a daemonizing program writes its daemon's pid (relative to the job's cwd).
    #[arg(long)]
    pub pidfile: Option<PathBuf>,
    /// The signal that asks the job to stop (default SIGTERM), e.g. SIGINT, SIGQUIT.
    #[arg(long, value_parser = parse_signal_name)]
    pub stop_signal: Option<String>,
    /// A command that stops the job, run instead of sending the signal (grace and SIGKILL follow).
    #[arg(long)]
    pub stop_command: Option<String>,
    /// Which processes the stop signal goes to.
    #[arg(long, value_enum, default_value = "group")]
    pub kill_mode: crate::spec::KillMode,
    /// Run in a pseudo-terminal.
    #[arg(long)]
    pub pty: bool,
    /// PTY width.
    #[arg(long, value_parser = parse_cells, default_value = "80")]
    pub cols: Cells,
    /// PTY height.
    #[arg(long, value_parser = parse_cells, default_value = "24")]
    pub rows: Cells,
    /// Restart policy.
    #[arg(long, value_enum, default_value = "never")]
    pub restart: RestartPolicy,
    /// First delay before a restart (doubles per consecutive crash).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub backoff: Duration,
    /// Restarts after crashes in a row (each within --min-uptime of its start) before giving up.
    #[arg(long, default_value_t = crate::spec::DEFAULT_MAX_RESTARTS)]
    pub max_restarts: u32,
    /// A run that lasts this long is stable: the next crash starts a new count.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub min_uptime: Duration,
    /// A constant delay before each restart, instead of the doubling --backoff.
    #[arg(long, value_parser = parse_duration)]
    pub restart_delay: Option<Duration>,
    /// An exit code that means the program stopped itself on purpose: never restarted (repeatable).
    #[arg(long)]
    pub stop_exit_codes: Vec<i32>,
    /// A file (relative to the job's cwd) that gets a copy of its stdout, as written.
    #[arg(long)]
    pub stdout: Option<PathBuf>,
    /// A file that gets a copy of its stderr, as written.
    #[arg(long)]
    pub stderr: Option<PathBuf>,
    /// A file that gets a copy of both streams, as written.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// In those files, each line starts with the time it was written.
    #[arg(long)]
    pub log_timestamps: bool,
    /// Rotate bgrun's log of the job when it reaches this size (MB, or e.g. 512MB, 1GB; default 100).
    #[arg(long, value_parser = parse_size)]
    pub log_max_size: Option<SizeMb>,
    /// How many files of bgrun's log of the job are kept, the current one included (default 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub log_max_files: Option<u32>,
    /// Kill the job when its processes use more memory than this (MB, or e.g. 512MB, 1GB).
    #[arg(long, value_parser = parse_size)]
    pub max_rss: Option<SizeMb>,
    /// Kill the job after it has run this long.
    #[arg(long, value_parser = parse_duration)]
    pub max_runtime: Option<Duration>,
    /// A cron schedule (5 fields, or 6 with seconds first): restart the job on it, or run a
    /// one-shot job on it.
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// Put a free TCP port in this environment variable (repeatable).
    #[arg(long)]
    pub allocate_port: Vec<String>,
    /// Bind this socket and hand it to every run of the job as fd 3.. with LISTEN_FDS
    /// (systemd's socket activation): HOST:PORT or unix:/PATH (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Vec<String>,
    /// Before starting, stop any process of yours that holds the job's ports (its readiness and
    /// health ports), not only the job's own leftovers.
    #[arg(long)]
    pub force: bool,
    /// Before each start, fast-forward the git checkout of the job's cwd from its upstream.
    #[arg(long)]
    pub fetch: bool,
    /// How a new spec replaces the running job (default: start-first with --listen).
    #[arg(long, value_enum)]
    pub update: Option<crate::spec::Update>,
    /// Supervise the command's `docker run`/`podman run` as a container (default: detected),
    /// or not (false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub container: Option<bool>,
    /// Probe this URL for liveness once ready.
    #[arg(long)]
    pub health_check_url: Option<String>,
    /// Probe this localhost TCP port for liveness once ready.
    #[arg(long)]
    pub health_check_port: Option<u16>,
    /// Time between health checks: whole seconds, or a duration (500ms, 2s).
    #[arg(long, value_parser = crate::spec::parse_seconds_or_duration, default_value = "10")]
    pub health_interval: Duration,
    /// Consecutive failed health checks before the job is killed.
    #[arg(long, default_value_t = 3)]
    pub health_threshold: u32,
    /// Probe with this command once ready: healthy when it exits 0.
    #[arg(long)]
    pub health_check_exec: Option<String>,
    /// How long one health check may take before it counts as failed.
    #[arg(long, value_parser = crate::spec::parse_seconds_or_duration, default_value = "5s")]
    pub health_timeout: Duration,
    /// After the job became ready, health check failures are not counted for this long.
    #[arg(long, value_parser = crate::spec::parse_seconds_or_duration, default_value = "0s")]
    pub health_start_period: Duration,
    /// Time between the stop signal and SIGKILL when the job is stopped.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub grace: Duration,
    /// The command: one string runs through `sh -c`, several words run directly. May be left
    /// out for a job of the nearby bgrun.toml given with --name.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

fn parse_env(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Megabytes, from a number or a size with a unit (`512`, `512MB`, `1GB`): a type of its own so
/// `bgrun schema run` can say what the flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeMb(pub u64);

fn parse_size(s: &str) -> std::result::Result<SizeMb, String> {
    crate::spec::parse_size_mb(s).map(SizeMb)
}

/// A terminal dimension: a whole number of cells, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells(pub u16);

fn parse_cells(s: &str) -> std::result::Result<Cells, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if n > 0 => Ok(Cells(n)),
        _ => Err(format!("{s:?} is not a number of cells from 1 to 65535")),
    }
}

/// A signal name as given, in its canonical form (`int` -> `SIGINT`).
fn parse_signal_name(s: &str) -> std::result::Result<String, String> {
    crate::spec::parse_signal(s).map(|sig| sig.as_str().to_string())
}

impl Args {
    /// The spec to run: the job of that name in the nearby bgrun.toml with the typed flags laid
    /// over it, or a spec from the flags alone.
    pub fn into_spec(self, typed: &clap::ArgMatches) -> Result<JobSpec> {
        if let Some(name) = &self.name
            && let Some(file_spec) = file_job(name)?
        {
            let flags = self.flags_spec()?;
            let mut spec = overlay(file_spec, flags, typed);
            spec.resolve_container_readiness();
            spec.validate()?;
            return Ok(spec);
        }
        if self.cmd.is_empty() {
            return Err(Error::new("what should run? give a command")
                .with_hint("bgrun run [OPTIONS] <CMD>..., or --name NAME for a job of the nearby bgrun.toml"));
        }
        let mut spec = self.flags_spec()?;
        spec.resolve_container_readiness();
        spec.validate()?;
        Ok(spec)
    }

    fn flags_spec(self) -> Result<JobSpec> {
        let here = std::env::current_dir().map_err(|e| Error::context("current directory", e))?;
        let cwd = match self.cwd {
            Some(dir) if dir.is_absolute() => dir,
            Some(dir) => here.join(dir),
            None => here.clone(),
        };
        let mut env: BTreeMap<String, String> = std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect();
        // The settings file first, `--env` over it.
        let (mut declared_env, mut env_sources) = (BTreeMap::new(), BTreeMap::new());
        let config = match (&self.config, self.no_config) {
            (_, true) => None,
            (Some(file), _) => Some(here.join(file)),
            (None, _) => Some(cwd.join(crate::project::config_env::DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        if let Some(path) = config {
            let vars =
                crate::project::config_env::read(&path).map_err(|e| Error::bad_input(format!("--config: {e}")))?;
            for (key, value) in vars {
                env_sources.insert(key.clone(), format!("config {}", path.display()));
                declared_env.insert(key, value);
            }
        }
        for (key, value) in self.env {
            env_sources.insert(key.clone(), "--env".to_string());
            declared_env.insert(key, value);
        }
        env.extend(declared_env.clone());
        let probed =
            self.health_check_url.is_some() || self.health_check_port.is_some() || self.health_check_exec.is_some();
        let health = probed.then_some(Health {
            url: self.health_check_url,
            port: self.health_check_port,
            exec: self.health_check_exec,
            interval: self.health_interval,
            threshold: self.health_threshold,
            timeout: self.health_timeout,
            start_period: self.health_start_period,
        });
        let spec = JobSpec {
            name: self.name,
            workspace: self.workspace.or_else(|| std::env::var("BGR_GROUP").ok().filter(|g| !g.is_empty())),
            cmd: self.cmd,
            cwd,
            env,
            ready: Readiness {
                log_contains: self.ready_when,
                log_regex: self.ready_when_regex,
                port: self.ready_when_port,
                url: self.ready_when_url,
                file: self.ready_when_file,
                notify: self.ready_when_notify,
                exec: self.ready_when_exec,
                timeout: self.ready_timeout,
            },
            after: self.after,
            oneshot: self.oneshot,
            daemonizes: self.daemonizes,
            pidfile: self.pidfile,
            stop: crate::spec::Stopping {
                signal: self.stop_signal,
                command: self.stop_command,
                kill_mode: self.kill_mode,
            },
            pty: self.pty.then_some(Pty { cols: self.cols.0, rows: self.rows.0 }),
            restart: self.restart,
            backoff: self.backoff,
            restarts: crate::spec::Restarts {
                max: self.max_restarts,
                min_uptime: self.min_uptime,
                delay: self.restart_delay,
                stop_exit_codes: self.stop_exit_codes,
            },
            disabled: false,
            mirror: crate::spec::Mirror {
                stdout: self.stdout,
                stderr: self.stderr,
                log: self.log,
                timestamps: self.log_timestamps,
            },
            log_limits: crate::spec::LogLimits {
                max_size_mb: self.log_max_size.map(|s| s.0),
                max_files: self.log_max_files,
            },
            max_rss_mb: self.max_rss.map(|s| s.0),
            max_runtime: self.max_runtime,
            allocate_ports: self.allocate_port,
            listen: self.listen,
            health,
            grace: self.grace,
            project: None,
            declared_env,
            watch: vec![],
            watch_ignore: vec![],
            restart_with_dependencies: false,
            request_id: None,
            env_sources,
            replica: None,
            cron: self.cron,
            fetch: self.fetch,
            update: self.update,
            container: self.container,
            force: self.force,
        };
        Ok(spec)
    }
}

/// The job `name` of the bgrun.toml in this directory or a parent, if there is one that loads.
fn file_job(name: &str) -> Result<Option<JobSpec>> {
    let here = std::env::current_dir().map_err(|e| Error::context("current directory", e))?;
    let Some(path) = crate::project::load::find(&here) else { return Ok(None) };
    match crate::project::load::load(&path, &super::project::FileArg::default().options()) {
        Ok(project) => Ok(project.jobs.into_iter().find(|j| j.name.as_deref() == Some(name))),
        Err(problems) => {
            crate::warn!("{:?}", problems.report());
            Err(Error::new(format!("{} has problems", path.display())))
        }
    }
}

/// Lays the flags the user typed over a spec from the file.
fn overlay(mut spec: JobSpec, flags: JobSpec, typed: &clap::ArgMatches) -> JobSpec {
    let given = |id: &str| typed.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    // Each typed flag replaces the file's value of the same setting.
    macro_rules! typed {
        ($($flag:literal => $($field:ident).+),* $(,)?) => {
            $(if given($flag) {
                spec.$($field).+ = flags.$($field).+;
            })*
        };
    }
    typed!(
        "cmd" => cmd, "cwd" => cwd, "workspace" => workspace, "after" => after,
        "ready_when" => ready.log_contains, "ready_when_regex" => ready.log_regex,
        "ready_when_port" => ready.port, "ready_when_url" => ready.url, "ready_when_file" => ready.file,
        "ready_when_notify" => ready.notify, "ready_timeout" => ready.timeout, "ready_when_exec" => ready.exec,
        "restart" => restart, "backoff" => backoff, "max_restarts" => restarts.max,
        "min_uptime" => restarts.min_uptime, "restart_delay" => restarts.delay,
        "stop_exit_codes" => restarts.stop_exit_codes, "stdout" => mirror.stdout, "stderr" => mirror.stderr,
        "log" => mirror.log, "log_timestamps" => mirror.timestamps, "max_rss" => max_rss_mb,
        "log_max_size" => log_limits.max_size_mb, "log_max_files" => log_limits.max_files, "max_runtime" => max_runtime, "cron" => cron,
        "allocate_port" => allocate_ports, "listen" => listen, "force" => force, "fetch" => fetch, "update" => update, "container" => container, "grace" => grace, "oneshot" => oneshot, "daemonizes" => daemonizes, "pidfile" => pidfile,
        "stop_signal" => stop.signal, "stop_command" => stop.command, "kill_mode" => stop.kill_mode,
    );
    // `--env` goes over the file's environment, a typed `--config` under it.
    for (key, source) in &flags.env_sources {
        let typed = (source == "--env" && given("env")) || (source.starts_with("config ") && given("config"));
        if !typed || (source != "--env" && spec.declared_env.contains_key(key)) {
            continue;
        }
        let Some(value) = flags.declared_env.get(key).cloned() else { continue };
        spec.env_sources.insert(key.clone(), source.clone());
        spec.declared_env.insert(key.clone(), value.clone());
        spec.env.insert(key.clone(), value);
    }
    if given("pty") || given("cols") || given("rows") {
        spec.pty = flags.pty;
    }
    if given("health_check_url") || given("health_check_port") || given("health_check_exec") {
        spec.health = flags.health;
    } else if let (Some(health), Some(typed_health)) = (&mut spec.health, &flags.health) {
        if given("health_interval") {
            health.interval = typed_health.interval;
        }
        if given("health_threshold") {
            health.threshold = typed_health.threshold;
        }
        if given("health_timeout") {
            health.timeout = typed_health.timeout;
        }
        if given("health_start_period") {
            health.start_period = typed_health.start_period;
        }
    }
    spec
}

/// How often a `run` is sent again when the daemon dies under it.
const RETRIES: usize = 3;

/// A job spec from `bgrun run`'s arguments (its flags, then the command), checked as `run` checks
/// them: how a program using bgrun as a library, and the dashboard's API, describe a job.
///
/// ```
/// let spec = bgrun::cli::run::spec(["--name", "web", "--ready-when-port", "8000", "--", "python3", "-m", "http.server"])?;
/// assert_eq!(spec.name.as_deref(), Some("web"));
/// # Ok::<(), bgrun::error::Error>(())
/// ```
pub fn spec<S: Into<std::ffi::OsString> + Clone>(args: impl IntoIterator<Item = S>) -> Result<JobSpec> {
    use clap::{CommandFactory, FromArgMatches};
    #[derive(clap::Parser)]
    #[command(name = "run", no_binary_name = true)]
    struct Run {
        #[command(flatten)]
        args: Args,
    }
    let usage = |e: clap::Error| {
        let text = e.render().to_string();
        let line = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
        Error::bad_input(line.to_string())
    };
    let matches = Run::command().try_get_matches_from(args).map_err(usage)?;
    Run::from_arg_matches(&matches).map_err(usage)?.args.into_spec(&matches)
}

pub fn exec(mut spec: JobSpec, home: &crate::home::Home, out: &Output) -> Result<i32> {
    // The daemon may die between recording the job and answering: the same request id sent to
    // the next daemon then answers with the job the first try created, never a second one.
    spec.request_id = Some(crate::job::new_id());
    let mut tries = 0;
    let job = loop {
        match Client::connect(home).and_then(|mut c| c.run(spec.clone())) {
            Err(e) if e.kind == ErrorKind::Unreachable && tries < RETRIES => tries += 1,
            other => break other?,
        }
    };
    if out.json {
        out.json_line(&job);
    } else {
        let name = job.display_name();
        let pid = job.pid.map_or(String::new(), |p| format!(", pid {p}"));
        out.text(&format!("{name} ({}){pid}: {}", short_id(&job.id), job.state));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("novalue").is_err());
        assert!(parse_env("=x").is_err());
    }
}

/// Unused-default guard: the spec's defaults and the flags' defaults must agree.
#[cfg(test)]
#[test]
fn defaults_match_spec() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }
    let t = T::parse_from(["t", "true"]);
    assert_eq!(t.a.grace, crate::spec::DEFAULT_GRACE);
    assert_eq!(t.a.backoff, crate::spec::DEFAULT_BACKOFF);
    assert_eq!(t.a.ready_timeout, crate::spec::DEFAULT_READY_TIMEOUT);
}
