//! A compose file (`compose.yaml`): a service per job with an image, in the Compose
//! Specification's form without a `version:` key, which docker-compose 1.29 and `docker compose`
//! both read (depends_on conditions included).

use super::yaml::{self, Map, Yaml};
use super::{Check, File, Input, Job, Report, container_cwd, containerize, header, span};
use crate::spec::{Condition, RestartPolicy};

/// The first port `allocate-port` variables get: each service has its own network namespace.
pub const FIRST_PORT: u16 = 8080;

pub fn export(input: &Input, report: &mut Report) -> Vec<File> {
    let jobs = super::jobs(input.project);
    let mut services = Map::new();
    // Which jobs became services, and whether each has a health check (for its dependents).
    let mut exported: Vec<(&str, bool, bool)> = Vec::new();
    for job in &jobs {
        // A job that is not exported has nothing else to report.
        let Some(container) = containerize(job, report) else { continue };
        report.dropped_keys(&job.name, &job.spec);
        let mut s = Map::new();
        s.set("image", dollars(&container.image));
        s.opt("entrypoint", container.entrypoint.as_deref().map(strings));
        if !container.args.is_empty() {
            s.set("command", strings(&container.args));
        }
        if !container.from_run
            && let Some(dir) = container_cwd(input.project, job, report)
        {
            s.set("working_dir", dir);
            s.set("volumes", yaml::strings(&[format!("{}:{}", mount_source(input), super::APP_DIR)]));
        }
        let mut environment = Map::new();
        for (key, value) in &job.spec.declared_env {
            environment.set(key, dollars(value));
        }
        let ports: Vec<u16> = (FIRST_PORT..).take(job.spec.allocate_ports.len()).collect();
        for (var, port) in job.spec.allocate_ports.iter().zip(&ports) {
            environment.set(var, port.to_string());
        }
        if !environment.is_empty() {
            s.set("environment", environment);
        }
        let published = published(job, report);
        if job.replicas.is_some() && !published.is_empty() {
            report.because(&job.name, "replicas", "its copies cannot all publish its `listen` port on the host".into());
        }
        s.list("ports", published);
        s.list("expose", ports.iter().map(|p| Yaml::Str(p.to_string())).collect());
        if let Some(depends) = depends_on(job, &exported, report) {
            s.set("depends_on", depends);
        }
        let health = healthcheck(job);
        let healthy = health.is_some() || job.image_health;
        s.opt("healthcheck", health);
        s.set("restart", restart(job, report));
        s.opt("stop_signal", job.spec.stop.signal.clone());
        s.set("stop_grace_period", span(job.spec.grace));
        s.opt("mem_limit", job.spec.max_rss_mb.map(|mb| format!("{mb}m")));
        if job.spec.pty.is_some() {
            s.set("tty", true);
        }
        if job.spec.disabled {
            s.set("profiles", yaml::strings(&["disabled"]));
        }
        if let Some(n) = job.replicas {
            s.set("deploy", Map::new().with("replicas", n));
        }
        services.set(&job.name, s);
        exported.push((&job.name, healthy, job.spec.oneshot));
    }
    let text = header("#", input, "compose") + &yaml::document(&Map::new().with("services", services));
    vec![File { name: "compose.yaml".into(), text }]
}

/// Compose reads `$` as the start of a variable everywhere: `$$` is a dollar sign.
fn dollars(text: &str) -> String {
    text.replace('$', "$$")
}

fn strings(items: &[String]) -> Yaml {
    Yaml::List(items.iter().map(|s| Yaml::Str(dollars(s))).collect())
}

/// The project's directory as a bind mount's source: relative to the compose file.
fn mount_source(input: &Input) -> String {
    let dir = input.project.file.parent().unwrap_or(std::path::Path::new("."));
    let rel = crate::project::import::convert::path_between(&input.out_dir, dir);
    match rel.to_string_lossy() {
        r if r.is_empty() => ".".into(),
        r if rel.is_absolute() => r.into_owned(),
        r => format!("./{r}"),
    }
}

/// `listen` addresses, published on the host as they were bound.
fn published(job: &Job, report: &mut Report) -> Vec<Yaml> {
    if job.spec.listen.is_empty() {
        return vec![];
    }
    report.drop(&job.name, "listen");
    job.spec
        .listen
        .iter()
        .filter_map(|address| match crate::spec::ListenAddress::parse(address) {
            Ok(crate::spec::ListenAddress::Tcp(at)) => Some(Yaml::Str(format!("{at}:{}", at.port()))),
            _ => None,
        })
        .collect()
}

fn depends_on(job: &Job, exported: &[(&str, bool, bool)], report: &mut Report) -> Option<Map> {
    let mut depends = Map::new();
    for dep in &job.spec.after {
        let Some(&(_, healthy, oneshot)) = exported.iter().find(|(name, ..)| *name == dep.job) else {
            report.because(&job.name, "after", format!("`{}` is not exported", dep.job));
            continue;
        };
        let condition = match dep.condition {
            Condition::Started => "service_started",
            Condition::Completed => "service_completed_successfully",
            Condition::Ready | Condition::ReadyOrEnded if oneshot => "service_completed_successfully",
            Condition::Ready | Condition::ReadyOrEnded if healthy => "service_healthy",
            Condition::Ready | Condition::ReadyOrEnded => {
                report.drop_about(&job.name, "after", &format!("`{}`", dep.job));
                "service_started"
            }
        };
        depends.set(&dep.job, Map::new().with("condition", condition));
    }
    (!depends.is_empty()).then_some(depends)
}

/// The readiness and health checks as one healthcheck: dependents wait for it to pass
/// (service_healthy), and it keeps running as the health check.
fn healthcheck(job: &Job) -> Option<Map> {
    let spec = &job.spec;
    let readiness = Check::readiness(spec);
    let mut checks = readiness.clone();
    // The same check for readiness and health (a common pair) is run once.
    checks.extend(Check::health(spec).into_iter().filter(|c| !readiness.contains(c)));
    let test = Check::all(&checks)?;
    let mut h = Map::new().with("test", yaml::strings(&["CMD-SHELL".to_string(), dollars(&test)]));
    match &spec.health {
        Some(health) => {
            h.set("interval", span(health.interval));
            h.set("timeout", span(health.timeout));
            h.set("retries", health.threshold);
        }
        None => h.set("interval", "5s"),
    }
    let start = match &spec.health {
        _ if !readiness.is_empty() => Some(spec.ready.timeout),
        Some(health) if !health.start_period.is_zero() => Some(health.start_period),
        _ => None,
    };
    h.opt("start_period", start.map(span));
    Some(h)
}

fn restart(job: &Job, report: &mut Report) -> String {
    let max_set = job.spec.restarts.max != crate::spec::DEFAULT_MAX_RESTARTS;
    match job.spec.restart {
        RestartPolicy::OnCrash if max_set => format!("on-failure:{}", job.spec.restarts.max),
        RestartPolicy::OnCrash => "on-failure".into(),
        policy => {
            if max_set {
                report.because(&job.name, "max-restarts", "compose limits restarts only with on-failure".into());
            }
            if policy == RestartPolicy::Always { "always".into() } else { "no".into() }
        }
    }
}
