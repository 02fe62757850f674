//! `bgrun export`: a loaded project's specs in, the files of another engine out: systemd units, a
//! compose file, Kubernetes manifests. Pure: the CLI loads the file and writes the result. What a
//! format cannot carry is listed per job and key, with the reason from [`keys::KEYS`], which is
//! also the README's mapping table.

mod calendar;
mod compose;
mod container;
pub mod keys;
mod kubernetes;
mod systemd;
mod yaml;

use crate::project::load::Project;
use crate::spec::JobSpec;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The formats export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// systemd units: a .service per job, .socket and .timer units, a .target for the project.
    Systemd,
    /// A compose file (docker compose, podman compose, docker-compose 1.29).
    Compose,
    /// Kubernetes manifests: Deployments, Jobs, CronJobs, Services, ConfigMaps.
    Kubernetes,
}

/// The systemd version assumed unless `--systemd-version` says: Debian 12's, the oldest in wide
/// use that has every other directive written.
pub const DEFAULT_SYSTEMD_VERSION: u32 = 252;

/// What to export, besides the format.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub project: &'a Project,
    /// The project file as the header names it (relative to where export was run).
    pub source: String,
    /// Where the output's relative paths start from (the compose file's bind mounts): the output
    /// directory, or the current one when printing.
    pub out_dir: PathBuf,
    /// The systemd version the units are for (RestartSteps= needs 254).
    pub systemd_version: u32,
    /// The named environment laid over the jobs (`--env NAME`), which the header names.
    pub environment: Option<String>,
}

/// One file of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub text: String,
}

/// Something of a job the format cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untranslated {
    pub job: String,
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Exported {
    pub files: Vec<File>,
    pub untranslated: Vec<Untranslated>,
}

pub fn export(format: Format, input: &Input) -> Exported {
    let mut report = Report { format, list: Vec::new() };
    let files = match format {
        Format::Systemd => systemd::export(input, &mut report),
        Format::Compose => compose::export(input, &mut report),
        Format::Kubernetes => kubernetes::export(input, &mut report),
    };
    Exported { files, untranslated: report.list }
}

/// The untranslated keys of one export, each with its format's reason from the table.
pub struct Report {
    format: Format,
    list: Vec<Untranslated>,
}

impl Report {
    /// `key` of `job` is not carried; the reason is the table's.
    pub fn drop(&mut self, job: &str, key: &str) {
        let reason = keys::reason(self.format, key).to_string();
        self.because(job, key, reason);
    }

    /// `key` of `job` is not carried as far as `what` is concerned (a dependency, an option).
    pub fn drop_about(&mut self, job: &str, key: &str, what: &str) {
        let reason = format!("{what}: {}", keys::reason(self.format, key));
        self.because(job, key, reason);
    }

    /// `key` of `job` is not carried, for a reason of this job's own.
    pub fn because(&mut self, job: &str, key: &str, reason: String) {
        let entry = Untranslated { job: job.to_string(), key: key.to_string(), reason };
        if !self.list.contains(&entry) {
            self.list.push(entry);
        }
    }

    /// Reports each key the job sets that the format drops whatever its value ([`keys::Cell::Dropped`]).
    pub fn dropped_keys(&mut self, job: &str, spec: &JobSpec) {
        for key in set_keys(spec) {
            if matches!(keys::named(key).cell(self.format), keys::Cell::Dropped { .. }) {
                self.drop(job, key);
            }
        }
    }
}

/// The keys a spec sets to something other than their default: those that can be dropped.
fn set_keys(spec: &JobSpec) -> Vec<&'static str> {
    let restarts = &spec.restarts;
    let defaults = crate::spec::Restarts::default();
    let health = spec.health.as_ref();
    [
        ("cron", spec.cron.is_some()),
        ("daemonizes", spec.daemonizes),
        ("stop-signal", spec.stop.signal.as_deref().is_some_and(|s| s != "SIGTERM")),
        ("stop-command", spec.stop.command.is_some()),
        ("ready-when", !spec.ready.log_contains.is_empty()),
        ("ready-when-regex", !spec.ready.log_regex.is_empty()),
        ("ready-when-port", spec.ready.port.is_some()),
        ("ready-when-url", spec.ready.url.is_some()),
        ("ready-when-notify", spec.ready.notify),
        ("backoff", spec.backoff != crate::spec::DEFAULT_BACKOFF && spec.restart != crate::spec::RestartPolicy::Never),
        ("max-restarts", restarts.max != defaults.max),
        ("min-uptime", restarts.min_uptime != defaults.min_uptime),
        ("restart-delay", restarts.delay.is_some()),
        ("stop-exit-codes", !restarts.stop_exit_codes.is_empty()),
        ("stdout", spec.mirror.stdout.is_some()),
        ("stderr", spec.mirror.stderr.is_some()),
        ("log", spec.mirror.log.is_some()),
        ("log-timestamps", spec.mirror.timestamps),
        ("max-runtime", spec.max_runtime.is_some()),
        ("allocate-port", !spec.allocate_ports.is_empty()),
        ("health-check-url", health.is_some_and(|h| h.url.is_some())),
        ("health-check-port", health.is_some_and(|h| h.port.is_some())),
        ("health-check-exec", health.is_some_and(|h| h.exec.is_some())),
        ("pty", spec.pty.is_some()),
        ("watch", !spec.watch.is_empty()),
        ("restart-with-dependencies", spec.restart_with_dependencies),
        ("fetch", spec.fetch),
        ("update", spec.update.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}

/// A job of the file: one spec, or the copies of a job with `replicas` folded back into one.
pub struct Job<'a> {
    /// Its name in the file.
    pub name: String,
    /// The first copy (or the job), with the copies' own variables taken out.
    pub spec: JobSpec,
    pub replicas: Option<u32>,
    pub image: Option<&'a str>,
    /// A container job ready when its image's own health check passes (`ready-when =
    /// "healthy"`): bgrun asks the engine, which an engine running the image does itself.
    pub image_health: bool,
}

/// Whether the job's readiness is its container's health check, as bgrun resolved
/// `ready-when = "healthy"` (into a command asking the engine on this machine).
fn ready_when_healthy(spec: &JobSpec) -> bool {
    let mut asked = spec.clone();
    asked.ready.exec = None;
    asked.ready.log_contains = vec!["healthy".into()];
    asked.resolve_container_readiness();
    asked.ready.exec.is_some() && asked.ready.exec == spec.ready.exec
}

/// The file's jobs in start order, copies folded; dependencies name jobs of the file.
pub fn jobs<'a>(project: &'a Project) -> Vec<Job<'a>> {
    let mut out: Vec<Job> = Vec::new();
    for spec in &project.jobs {
        let name = match &spec.replica {
            Some(r) => r.of.clone(),
            None => spec.name.clone().unwrap_or_default(),
        };
        if let Some(job) = out.iter_mut().find(|j| j.name == name) {
            job.replicas = job.replicas.map(|n| n + 1);
            continue;
        }
        let mut spec = spec.clone();
        if spec.replica.is_some() {
            for var in ["BGRUN_REPLICA", "BGRUN_REPLICA_NUMBER"] {
                spec.declared_env.remove(var);
                spec.env_sources.remove(var);
            }
        }
        let image = project.images.get(&name).map(String::as_str);
        let replicas = spec.replica.as_ref().map(|_| 1);
        let image_health = image.is_none() && ready_when_healthy(&spec);
        if image_health {
            spec.ready.exec = None;
        }
        out.push(Job { name, spec, replicas, image, image_health });
    }
    // A dependency on a copy (`api.2`) is one on the job; each is kept once.
    let copies: std::collections::BTreeMap<String, String> =
        project.jobs.iter().filter_map(|s| Some((s.name.clone()?, s.replica.as_ref()?.of.clone()))).collect();
    for job in &mut out {
        let mut seen = Vec::new();
        job.spec.after.retain_mut(|dep| {
            if let Some(of) = copies.get(&dep.job) {
                dep.job = of.clone();
            }
            let first = !seen.contains(&dep.job);
            seen.push(dep.job.clone());
            first
        });
    }
    out
}

/// The header comment of every file, in the format's comment syntax.
pub fn header(comment: &str, input: &Input, format: &str) -> String {
    let environment = input.environment.as_ref().map(|e| format!(" --env {e}")).unwrap_or_default();
    format!(
        "{comment} Exported by `bgrun export {format}{environment}` from {} (project {}).\n\
         {comment} Generated: edit {} and export again rather than this file.\n",
        input.source, input.project.name, input.source
    )
}

/// A word for `sh -c`: as it is when the shell leaves it alone, else single-quoted.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '+' | '@'));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// A check as one shell command, for engines that run checks in the container: a port, a URL, a
/// file or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Port(u16),
    Url(String),
    File(PathBuf),
    Exec(String),
}

impl Check {
    /// The job's readiness checks that an engine can run, in this order.
    pub fn readiness(spec: &JobSpec) -> Vec<Check> {
        let r = &spec.ready;
        let mut checks = Vec::new();
        checks.extend(r.port.map(Check::Port));
        checks.extend(r.url.clone().map(Check::Url));
        checks.extend(r.file.clone().map(Check::File));
        checks.extend(r.exec.clone().map(Check::Exec));
        checks
    }

    /// The job's health checks.
    pub fn health(spec: &JobSpec) -> Vec<Check> {
        let Some(h) = &spec.health else { return vec![] };
        let mut checks = Vec::new();
        checks.extend(h.port.map(Check::Port));
        checks.extend(h.url.clone().map(Check::Url));
        checks.extend(h.exec.clone().map(Check::Exec));
        checks
    }

    pub fn shell(&self) -> String {
        match self {
            // Slim images have bash more often than nc.
            Check::Port(port) => format!("nc -z 127.0.0.1 {port} || bash -c ': </dev/tcp/127.0.0.1/{port}'"),
            Check::Url(url) => {
                let url = shell_quote(url);
                format!("curl -fsS -o /dev/null {url} || wget -q -O /dev/null {url}")
            }
            Check::File(path) => format!("test -e {}", shell_quote(&path.to_string_lossy())),
            Check::Exec(command) => command.clone(),
        }
    }

    /// Several checks as one command that passes when all do.
    pub fn all(checks: &[Check]) -> Option<String> {
        match checks {
            [] => None,
            [one] => Some(one.shell()),
            many => Some(many.iter().map(|c| format!("( {} )", c.shell())).collect::<Vec<_>>().join(" && ")),
        }
    }
}

/// The port of a URL: its own, or its scheme's.
pub fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let host_port = rest.split(['/', '?', '#']).next()?;
    match host_port.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => port.parse().ok(),
        _ => Some(if scheme == "https" { 443 } else { 80 }),
    }
}

/// The path (with query) of a URL, for probes that name the port apart.
pub fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(at) => rest[at..].to_string(),
        None => "/".into(),
    }
}

/// A duration in whole seconds, rounded up and at least 1 (what probes and grace periods take).
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// A duration as systemd and compose both read it: `5s`, or `500ms` below a whole second.
pub fn span(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// The job's cwd under the project's directory ("" for the directory itself), or None outside it.
pub fn under_project(project: &Project, cwd: &Path) -> Option<PathBuf> {
    let dir = project.file.parent()?;
    cwd.strip_prefix(dir).ok().map(Path::to_path_buf)
}

/// Where the project's directory is in a container (compose mounts it there; a Kubernetes image
/// is expected to hold it there).
pub const APP_DIR: &str = "/app";

/// The container's working directory for a job whose cwd is in the project, else reported.
pub fn container_cwd(project: &Project, job: &Job, report: &mut Report) -> Option<String> {
    match under_project(project, &job.spec.cwd) {
        Some(rel) if rel.as_os_str().is_empty() => Some(APP_DIR.to_string()),
        Some(rel) => Some(format!("{APP_DIR}/{}", rel.display())),
        None => {
            report.drop(&job.name, "cwd");
            None
        }
    }
}

/// Some of a job's variables, by name.
pub type Variables<'a> = Vec<(&'a String, &'a String)>;

/// The declared variables that came from files (`env-file`, `config`) and the others.
pub fn env_by_origin(spec: &JobSpec) -> (Variables<'_>, Variables<'_>) {
    spec.declared_env.iter().partition(|(k, _)| {
        spec.env_sources.get(*k).is_some_and(|s| s.starts_with("env-file ") || s.starts_with("config "))
    })
}

/// What runs in the container: an image and the argv (entrypoint first), or the image's own
/// entrypoint with arguments (a `docker run` job). None when the job has no image (reported).
pub struct Containerized {
    pub image: String,
    /// The command as bgrun runs it, or None to keep the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    pub args: Vec<String>,
    /// A `docker run` job: its cwd is on the host, not in the container.
    pub from_run: bool,
}

pub fn containerize(job: &Job, report: &mut Report) -> Option<Containerized> {
    if let Some(image) = job.image {
        let mut argv = job.spec.argv();
        let args = argv.split_off(1.min(argv.len()));
        return Some(Containerized { image: image.to_string(), entrypoint: Some(argv), args, from_run: false });
    }
    if job.spec.container_run().is_some() {
        match container::parse_run(&job.spec.words()) {
            Some(run) => {
                if !run.options.is_empty() {
                    report.drop_about(&job.name, "container", &run.options.join(" "));
                }
                return Some(Containerized { image: run.image, entrypoint: None, args: run.args, from_run: true });
            }
            None => report.because(&job.name, "container", "no image found in its run command".into()),
        }
        return None;
    }
    report.drop(&job.name, "image");
    None
}

#[cfg(test)]
mod tests;
