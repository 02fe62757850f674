//! `GET /metrics`: the jobs and the daemon in Prometheus' text exposition format (0.0.4).

use super::api::ApiError;
use super::{App, call};
use crate::protocol::{DaemonInfo, HealthView, JobView, StatsView};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

pub async fn handle(State(app): State<Arc<App>>) -> Result<impl IntoResponse, ApiError> {
    let (daemon, jobs, stats) = call(&app, |c| {
        let daemon = c.daemon_status()?;
        Ok((daemon, c.list(None)?, c.stats_all()?))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&daemon, &jobs, &stats)))
}

/// The states a job can be in: each job has a `bgrun_job_state` sample for every one, 1 for its own.
const STATES: [&str; 6] = ["starting", "running", "ready", "exited", "crashed", "killed"];

/// One metric family: its help and type lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn job_labels(job: &JobView) -> String {
    format!(
        "job=\"{}\",id=\"{}\",project=\"{}\"",
        escape(job.display_name()),
        escape(&job.id),
        escape(job.project.as_deref().unwrap_or(""))
    )
}

pub fn render(daemon: &DaemonInfo, jobs: &[JobView], stats: &BTreeMap<String, StatsView>) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "# HELP bgrun_jobs Jobs the daemon knows.\n# TYPE bgrun_jobs gauge\nbgrun_jobs {}", daemon.jobs);
    let _ = writeln!(
        out,
        "# HELP bgrun_reconcile_passes_total Passes the reconciler has made since the daemon started.\n\
         # TYPE bgrun_reconcile_passes_total counter\nbgrun_reconcile_passes_total {}",
        daemon.passes
    );
    let _ = writeln!(
        out,
        "# HELP bgrun_daemon_uptime_seconds How long the daemon has run.\n\
         # TYPE bgrun_daemon_uptime_seconds gauge\nbgrun_daemon_uptime_seconds {}",
        daemon.uptime_secs
    );
    let labelled: Vec<(String, &JobView)> = jobs.iter().map(|j| (job_labels(j), j)).collect();
    let mut f = Family::new(&mut out, "bgrun_job_state", "gauge", "1 for the state the job is in, 0 for the others.");
    for (labels, job) in &labelled {
        for state in STATES {
            f.sample("bgrun_job_state", &format!("{labels},state=\"{state}\""), u8::from(job.state == state));
        }
    }
    let mut f =
        Family::new(&mut out, "bgrun_job_ready", "gauge", "1 while the job is ready (its readiness check passed).");
    for (labels, job) in &labelled {
        f.sample("bgrun_job_ready", labels, u8::from(job.state == "ready"));
    }
    let mut f =
        Family::new(&mut out, "bgrun_job_restarts_total", "counter", "Restarts by policy since the job was created.");
    for (labels, job) in &labelled {
        f.sample("bgrun_job_restarts_total", labels, job.restart_count);
    }
    let with_stats: Vec<(&String, &StatsView)> =
        labelled.iter().filter_map(|(labels, job)| Some((labels, stats.get(&job.id)?))).collect();
    let mut f =
        Family::new(&mut out, "bgrun_job_uptime_seconds", "gauge", "How long the job's current run has lasted.");
    for (labels, s) in &with_stats {
        f.sample("bgrun_job_uptime_seconds", labels, s.uptime_secs);
    }
    let mut f = Family::new(
        &mut out,
        "bgrun_job_cpu_percent",
        "gauge",
        "CPU use of the job's process tree, in percent of one core.",
    );
    for (labels, s) in &with_stats {
        f.sample("bgrun_job_cpu_percent", labels, s.cpu_pct);
    }
    let mut f =
        Family::new(&mut out, "bgrun_job_memory_rss_bytes", "gauge", "Resident memory of the job's process tree.");
    for (labels, s) in &with_stats {
        f.sample("bgrun_job_memory_rss_bytes", labels, s.rss_mb * 1024 * 1024);
    }
    let mut f = Family::new(&mut out, "bgrun_job_processes", "gauge", "Processes in the job's tree.");
    for (labels, s) in &with_stats {
        f.sample("bgrun_job_processes", labels, s.processes);
    }
    let checked: Vec<(&String, &HealthView)> =
        with_stats.iter().filter_map(|(labels, s)| Some((*labels, s.health.as_ref()?))).collect();
    let mut f = Family::new(&mut out, "bgrun_job_healthy", "gauge", "1 while the job's last health check passed.");
    for (labels, h) in &checked {
        f.sample("bgrun_job_healthy", labels, u8::from(h.healthy));
    }
    let mut f =
        Family::new(&mut out, "bgrun_job_health_check_seconds", "gauge", "How long the job's last health check took.");
    for (labels, h) in &checked {
        f.sample("bgrun_job_health_check_seconds", labels, h.latency_ms / 1000.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, state: &str) -> JobView {
        JobView {
            id: format!("id-{name}"),
            name: Some(name.into()),
            project: None,
            workspace: None,
            cmd: vec![],
            pid: Some(1),
            state: state.into(),
            started_at: None,
            exit_code: None,
            restart_count: 2,
            reason: String::new(),
            cwd: "/".into(),
            ports: vec![],
        }
    }

    #[test]
    fn label_values_are_escaped_and_each_job_has_one_state() {
        let daemon = DaemonInfo {
            pid: 1,
            version: "0".into(),
            protocol: 5,
            uptime_secs: 9,
            socket: String::new(),
            home: String::new(),
            jobs: 1,
            passes: 3,
            problems: vec![],
        };
        let text = render(&daemon, &[job("we\"b\\\n", "crashed")], &BTreeMap::new());
        assert!(text.contains(r#"job="we\"b\\\n""#), "{text}");
        let states: Vec<&str> =
            text.lines().filter(|l| l.starts_with("bgrun_job_state{") && l.ends_with(" 1")).collect();
        assert_eq!(states.len(), 1);
        assert!(states[0].contains("state=\"crashed\""));
        assert!(text.contains("bgrun_job_restarts_total{") && text.contains("} 2\n"));
        // No process figures without a sample.
        assert!(!text.contains("bgrun_job_cpu_percent{"));
    }
}
