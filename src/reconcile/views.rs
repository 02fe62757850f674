//! The shapes jobs are shown in, built by handlers from snapshots of the reconciler's jobs.

use crate::clock::{rfc3339_ms, rfc3339_s};
use crate::job::{Desired, Job};
use crate::protocol::{EventView, JobView, StatusView};
use crate::state::Lifecycle;
use crate::supervisor::procfs;

pub fn job_view(job: &Job) -> JobView {
    let life = job.life();
    JobView {
        id: job.id.clone(),
        name: job.spec.name.clone(),
        project: job.spec.project.clone(),
        workspace: job.spec.workspace.clone(),
        cmd: job.spec.words(),
        pid: life.last_pid(),
        state: life.state().as_str().to_string(),
        started_at: life.started_ms().map(rfc3339_s),
        exit_code: life.ending().and_then(|e| e.code),
        restart_count: job.obs.restart_count,
        reason: life.reason(),
        cwd: job.spec.cwd.display().to_string(),
        ports: Vec::new(),
    }
}

/// The root of a job's process tree while it has one, for finding its ports outside the
/// reconciler.
pub fn tree_root(job: &Job) -> Option<i32> {
    job.life().pid()
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

/// `status` of a job; reads /proc for its ports, so it is built outside the reconciler.
pub fn status_view(job: &Job, log: String, events: Vec<EventView>) -> StatusView {
    let life = job.life();
    let end = life.ending();
    StatusView {
        state: life.state().as_str().to_string(),
        exit_code: end.and_then(|e| e.code),
        ready_at: life.ready_ms().map(rfc3339_ms),
        restart_count: job.obs.restart_count,
        last_diff_cursor: job.obs.diff_cursor,
        id: job.id.clone(),
        name: job.spec.name.clone(),
        project: job.spec.project.clone(),
        workspace: job.spec.workspace.clone(),
        cmd: job.spec.words(),
        cwd: job.spec.cwd.display().to_string(),
        pid: life.last_pid(),
        signal: end.and_then(|e| e.signal),
        reason: life.reason(),
        started_at: life.started_ms().map(rfc3339_s),
        // Records converted from an earlier daemon may not know when they ended.
        ended_at: end.map(|e| e.at_ms).filter(|ms| *ms > 0).map(rfc3339_s),
        desired: match job.desired {
            Desired::Running => "running".into(),
            Desired::Stopped => "stopped".into(),
        },
        generation: job.generation,
        observed_generation: job.obs.generation,
        log,
        next_restart_at: match life {
            Lifecycle::BackingOff { until_ms, .. } => Some(rfc3339_ms(*until_ms)),
            _ => None,
        },
        ports: tree_root(job).map_or_else(Vec::new, |root| scan_ports(&[root]).remove(&root).unwrap_or_default()),
        allocated_ports: job.obs.allocated_ports.clone(),
        events,
    }
}
