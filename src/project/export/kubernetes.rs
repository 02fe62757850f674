//! Kubernetes manifests (`kubernetes.yaml`, one document per object): a Deployment per
//! long-running job, a Job per one-shot, a CronJob per scheduled one-shot, a Service for a job's
//! ports, a ConfigMap for the variables of its env-files and settings file. Kubernetes keeps no
//! start order: `after` becomes an init container that waits for the dependency's Service.

use super::yaml::{self, Map, Yaml};
use super::{Check, File, Input, Job, Report, container_cwd, containerize, header, whole_seconds};
use crate::spec::{JobSpec, ListenAddress, RestartPolicy};

/// The image of the init containers that wait for a dependency (its `nc`).
const WAIT_IMAGE: &str = "busybox:1.36";

pub fn export(input: &Input, report: &mut Report) -> Vec<File> {
    let jobs = super::jobs(input.project);
    let part_of = name_of(&input.project.name);
    let mut documents: Vec<Map> = Vec::new();
    // The jobs exported so far, with their Service's first port (what dependents wait for).
    let mut exported: Vec<(String, String, Option<u16>)> = Vec::new();
    for job in &jobs {
        let name = name_of(&job.name);
        if let Some((other, ..)) = exported.iter().find(|(_, n, _)| *n == name) {
            report.because(&job.name, "[jobs.<name>]", format!("its Kubernetes name `{name}` is also `{other}`'s"));
            continue;
        }
        // A job that is not exported has nothing else to report.
        let Some(container) = containerize(job, report) else { continue };
        report.dropped_keys(&job.name, &job.spec);
        if job.image_health {
            report.because(&job.name, "ready-when", "Kubernetes does not run an image's own health check".into());
        }
        if !job.spec.listen.is_empty() {
            report.drop(&job.name, "listen");
        }
        let labels = Map::new()
            .with("app.kubernetes.io/name", name.as_str())
            .with("app.kubernetes.io/part-of", part_of.as_str());
        let metadata = Map::new().with("name", name.as_str()).with("labels", labels.clone());
        let ports = ports(&job.spec);
        let (from_files, own) = super::env_by_origin(&job.spec);
        if !from_files.is_empty() {
            let mut data = Map::new();
            for (key, value) in &from_files {
                data.set(key, value.as_str());
            }
            let meta = Map::new().with("name", format!("{name}-env")).with("labels", labels.clone());
            documents.push(object("v1", "ConfigMap", meta).with("data", data));
        }
        let mut c = Map::new().with("name", name.as_str()).with("image", container.image.as_str());
        c.opt("command", container.entrypoint.as_deref().map(expanded));
        if !container.args.is_empty() {
            c.set("args", expanded(&container.args));
        }
        if !container.from_run {
            c.opt("workingDir", container_cwd(input.project, job, report));
        }
        let mut env: Vec<Yaml> = own.iter().map(|(k, v)| variable(k, v)).collect();
        let allocated = (super::compose::FIRST_PORT..).take(job.spec.allocate_ports.len());
        env.extend(job.spec.allocate_ports.iter().zip(allocated).map(|(k, port)| variable(k, &port.to_string())));
        c.list("env", env);
        if !from_files.is_empty() {
            let from = Map::new().with("configMapRef", Map::new().with("name", format!("{name}-env")));
            c.set("envFrom", Yaml::List(vec![from.into()]));
        }
        let container_ports = ports.iter().map(|p| Map::new().with("containerPort", u64::from(*p)).into()).collect();
        c.list("ports", container_ports);
        c.opt("readinessProbe", readiness_probe(&job.spec));
        c.opt("livenessProbe", liveness_probe(&job.spec));
        if let Some(mb) = job.spec.max_rss_mb {
            c.set("resources", Map::new().with("limits", Map::new().with("memory", format!("{mb}Mi"))));
        }
        if let Some(stop) = &job.spec.stop.command {
            let exec = Map::new().with("command", expanded(&["sh".into(), "-c".into(), stop.clone()]));
            c.set("lifecycle", Map::new().with("preStop", Map::new().with("exec", exec)));
        }
        if job.spec.pty.is_some() {
            c.set("stdin", true);
            c.set("tty", true);
        }
        let on_crash = job.spec.restart == RestartPolicy::OnCrash;
        let restart = match (job.spec.oneshot, on_crash) {
            (false, _) => "Always",
            (true, true) => "OnFailure",
            (true, false) => "Never",
        };
        let mut pod = Map::new()
            .with("restartPolicy", restart)
            .with("terminationGracePeriodSeconds", whole_seconds(job.spec.grace));
        pod.list("initContainers", waits(job, &exported, report));
        pod.set("containers", Yaml::List(vec![c.into()]));
        let template = Map::new().with("metadata", Map::new().with("labels", labels.clone())).with("spec", pod);
        documents.push(if job.spec.oneshot {
            let mut spec = Map::new().with("backoffLimit", if on_crash { job.spec.restarts.max } else { 0 });
            spec.opt("activeDeadlineSeconds", job.spec.max_runtime.map(whole_seconds));
            spec.set("template", template);
            match &job.spec.cron {
                Some(cron) => {
                    let mut cron_spec = Map::new().with("schedule", schedule(job, cron, report));
                    if job.spec.disabled {
                        cron_spec.set("suspend", true);
                    }
                    cron_spec.set("jobTemplate", Map::new().with("spec", spec));
                    object("batch/v1", "CronJob", metadata.clone()).with("spec", cron_spec)
                }
                None => {
                    if job.spec.disabled {
                        spec.set("suspend", true);
                    }
                    object("batch/v1", "Job", metadata.clone()).with("spec", spec)
                }
            }
        } else {
            let unsupported = [
                ("cron", job.spec.cron.is_some()),
                ("max-runtime", job.spec.max_runtime.is_some()),
                ("max-restarts", job.spec.restarts.max != crate::spec::DEFAULT_MAX_RESTARTS),
            ];
            for (key, _) in unsupported.into_iter().filter(|(_, set)| *set) {
                report.drop(&job.name, key);
            }
            let replicas = if job.spec.disabled { 0 } else { job.replicas.unwrap_or(1) };
            let mut spec = Map::new()
                .with("replicas", replicas)
                .with("selector", Map::new().with("matchLabels", labels.clone()))
                .with("template", template);
            if let Some(update) = job.spec.update {
                spec.set("strategy", strategy(update));
            }
            object("apps/v1", "Deployment", metadata.clone()).with("spec", spec)
        });
        if !ports.is_empty() {
            let service_ports: Vec<Yaml> = ports
                .iter()
                .map(|p| {
                    let port = u64::from(*p);
                    Map::new().with("name", format!("port-{p}")).with("port", port).with("targetPort", port).into()
                })
                .collect();
            let spec = Map::new().with("selector", labels.clone()).with("ports", Yaml::List(service_ports));
            documents.push(object("v1", "Service", metadata).with("spec", spec));
        }
        exported.push((job.name.clone(), name, ports.first().copied()));
    }
    let mut text = header("#", input, "kubernetes");
    let bodies: Vec<String> = documents.iter().map(yaml::document).collect();
    text.push_str(&bodies.join("---\n"));
    vec![File { name: "kubernetes.yaml".into(), text }]
}

/// How a Deployment replaces its pods as `update` replaces a job: a new pod first, the old one
/// once it is ready, or the old ones first.
fn strategy(update: crate::spec::Update) -> Map {
    match update {
        crate::spec::Update::StartFirst => Map::new()
            .with("type", "RollingUpdate")
            .with("rollingUpdate", Map::new().with("maxSurge", 1u64).with("maxUnavailable", 0u64)),
        crate::spec::Update::StopFirst => Map::new().with("type", "Recreate"),
    }
}

/// A name Kubernetes takes (an RFC 1123 label): lower case, `-` for `_` and `.`, 63 at most.
fn name_of(job: &str) -> String {
    let name: String =
        job.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    name.chars().take(63).collect::<String>().trim_matches('-').to_string()
}

fn object(api_version: &str, kind: &str, metadata: Map) -> Map {
    Map::new().with("apiVersion", api_version).with("kind", kind).with("metadata", metadata)
}

/// Kubernetes expands `$(VAR)` in commands and variables: `$$(` keeps it as written.
fn literal(text: &str) -> String {
    text.replace("$(", "$$(")
}

fn expanded(items: &[String]) -> Yaml {
    Yaml::List(items.iter().map(|s| Yaml::Str(literal(s))).collect())
}

fn variable(name: &str, value: &str) -> Yaml {
    Map::new().with("name", name).with("value", literal(value)).into()
}

/// The TCP ports the job serves: its sockets, the ports its checks name, its allocated ports.
fn ports(spec: &JobSpec) -> Vec<u16> {
    let mut ports: Vec<u16> = spec
        .listen
        .iter()
        .filter_map(|a| match ListenAddress::parse(a) {
            Ok(ListenAddress::Tcp(at)) => Some(at.port()),
            _ => None,
        })
        .collect();
    for check in Check::readiness(spec).iter().chain(&Check::health(spec)) {
        match check {
            Check::Port(p) => ports.push(*p),
            Check::Url(url) => ports.extend(super::url_port(url)),
            _ => {}
        }
    }
    ports.extend((super::compose::FIRST_PORT..).take(spec.allocate_ports.len()));
    let mut seen = Vec::new();
    ports.retain(|p| {
        let first = !seen.contains(p);
        seen.push(*p);
        first
    });
    ports
}

/// A probe's action: a check of its own kind, or several as one shell command.
fn handler(checks: &[Check]) -> Option<Map> {
    let shell = |command: String| {
        Map::new().with("exec", Map::new().with("command", expanded(&["sh".into(), "-c".into(), command])))
    };
    Some(match checks {
        [] => return None,
        [Check::Port(port)] => Map::new().with("tcpSocket", Map::new().with("port", u64::from(*port))),
        [Check::Url(url)] => {
            let mut get = Map::new().with("path", super::url_path(url));
            get.opt("port", super::url_port(url).map(u64::from));
            if url.starts_with("https://") {
                get.set("scheme", "HTTPS");
            }
            Map::new().with("httpGet", get)
        }
        many => shell(Check::all(many)?),
    })
}

fn readiness_probe(spec: &JobSpec) -> Option<Map> {
    let mut probe = handler(&Check::readiness(spec))?;
    probe.set("periodSeconds", 2u64);
    Some(probe)
}

fn liveness_probe(spec: &JobSpec) -> Option<Map> {
    let health = spec.health.as_ref()?;
    let mut probe = handler(&Check::health(spec))?;
    if !health.start_period.is_zero() {
        probe.set("initialDelaySeconds", whole_seconds(health.start_period));
    }
    probe.set("periodSeconds", whole_seconds(health.interval));
    probe.set("timeoutSeconds", whole_seconds(health.timeout));
    probe.set("failureThreshold", health.threshold);
    Some(probe)
}

/// An init container per dependency, waiting until its Service accepts connections.
fn waits(job: &Job, exported: &[(String, String, Option<u16>)], report: &mut Report) -> Vec<Yaml> {
    let mut out = Vec::new();
    for dep in &job.spec.after {
        match exported.iter().find(|(file_name, ..)| *file_name == dep.job) {
            None => report.because(&job.name, "after", format!("`{}` is not exported", dep.job)),
            Some((_, _, None)) => report.drop_about(&job.name, "after", &format!("`{}`", dep.job)),
            Some((_, service, Some(port))) => {
                let script = format!("until nc -z {service} {port}; do echo waiting for {service}; sleep 1; done");
                let wait = Map::new()
                    .with("name", format!("wait-for-{service}"))
                    .with("image", WAIT_IMAGE)
                    .with("command", yaml::strings(&["sh", "-c", &script]));
                out.push(wait.into());
            }
        }
    }
    out
}

/// A cron expression as a CronJob takes it: five fields; a seconds field of 0 goes, any other is
/// reported.
fn schedule(job: &Job, cron: &str, report: &mut Report) -> String {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    if fields.len() == 6 {
        if fields[0] != "0" {
            report.drop(&job.name, "cron");
        }
        return fields[1..].join(" ");
    }
    cron.to_string()
}
