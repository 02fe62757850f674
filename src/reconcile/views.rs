//! The shapes jobs are shown in, built from the reconciler's state.

use crate::job::{Desired, Job};
use crate::protocol::{JobView, StatusView};
use crate::render::rfc3339_s;
use crate::supervisor::procfs;

fn pid(job: &Job) -> Option<i32> {
    job.obs.run.map(|r| r.pid).filter(|p| *p > 0)
}

/// `project/name` for a job of a project, the name (or short id) otherwise.
pub fn qualified_name(job: &Job) -> String {
    match &job.spec.project {
        Some(p) => format!("{p}/{}", job.display_name()),
        None => job.display_name().to_string(),
    }
}

pub fn job_view(job: &Job) -> JobView {
    JobView {
        id: job.id.clone(),
        name: job.spec.name.clone(),
        project: job.spec.project.clone(),
        workspace: job.spec.workspace.clone(),
        cmd: job.spec.cmd.clone(),
        pid: pid(job),
        state: job.obs.state.as_str().to_string(),
        started_at: job.obs.started_ms.map(rfc3339_s),
        exit_code: job.obs.exit_code,
        restart_count: job.obs.restart_count,
        reason: job.obs.reason.clone(),
        cwd: job.spec.cwd.display().to_string(),
        ports: Vec::new(),
    }
}

/// The pids of a job's process tree, if it has one, for finding its ports outside the reconciler.
pub fn tree_root(job: &Job) -> Option<i32> {
    job.obs.state.is_alive().then(|| pid(job)).flatten()
}

/// How long one look at /proc serves `list`: finding ports means reading every process's
/// stat and every job process's fds (about 10 ms with 100 jobs), and ports change rarely.
const PORTS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Ports of process trees, by root pid.
type PortsByRoot = std::collections::HashMap<i32, Vec<u16>>;

/// The listening ports of job process trees, as of at most [`PORTS_FRESH_FOR`] ago.
#[derive(Default)]
pub struct PortCache {
    scan: std::sync::Mutex<Option<(std::time::Instant, PortsByRoot)>>,
}

impl PortCache {
    /// Fills in `ports` for each view with a root pid.
    pub fn fill(&self, views: &mut [(JobView, Option<i32>)]) {
        let roots: Vec<i32> = views.iter().filter_map(|(_, r)| *r).collect();
        if roots.is_empty() {
            return;
        }
        let mut scan = self.scan.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = scan
            .as_ref()
            .is_some_and(|(at, ports)| at.elapsed() < PORTS_FRESH_FOR && roots.iter().all(|r| ports.contains_key(r)));
        if !fresh {
            *scan = Some((std::time::Instant::now(), scan_ports(&roots)));
        }
        let ports = &scan.as_ref().expect("just filled").1;
        for (view, root) in views {
            if let Some(found) = root.and_then(|r| ports.get(&r)) {
                view.ports = found.clone();
            }
        }
    }
}

/// One look at /proc for the ports of several process trees.
fn scan_ports(roots: &[i32]) -> PortsByRoot {
    let listening = procfs::listening_sockets();
    if listening.is_empty() {
        // Nothing on the machine listens: no process tree needs looking at.
        return roots.iter().map(|r| (*r, Vec::new())).collect();
    }
    let parents = procfs::parents();
    roots
        .iter()
        .map(|&root| {
            let mut pids = procfs::descendants_in(&parents, root);
            pids.push(root);
            (root, procfs::ports_of(&pids, &listening))
        })
        .collect()
}

pub fn status_view(job: &Job, log: String, events: Vec<crate::store::Event>) -> StatusView {
    StatusView {
        state: job.obs.state.as_str().to_string(),
        exit_code: job.obs.exit_code,
        ready_at: job.obs.ready_ms.map(crate::render::rfc3339_ms),
        restart_count: job.obs.restart_count,
        last_diff_cursor: job.obs.diff_cursor,
        id: job.id.clone(),
        name: job.spec.name.clone(),
        project: job.spec.project.clone(),
        workspace: job.spec.workspace.clone(),
        cmd: job.spec.cmd.clone(),
        cwd: job.spec.cwd.display().to_string(),
        pid: pid(job),
        signal: job.obs.exit_signal,
        reason: job.obs.reason.clone(),
        started_at: job.obs.started_ms.map(rfc3339_s),
        ended_at: job.obs.ended_ms.map(rfc3339_s),
        desired: match job.desired {
            Desired::Running => "running".into(),
            Desired::Stopped => "stopped".into(),
        },
        generation: job.generation,
        observed_generation: job.obs.generation,
        log,
        next_restart_at: job.obs.restart_at_ms.map(crate::render::rfc3339_ms),
        ports: tree_root(job).map_or_else(Vec::new, |root| scan_ports(&[root]).remove(&root).unwrap_or_default()),
        allocated_ports: job.obs.allocated_ports.clone(),
        events,
    }
}
