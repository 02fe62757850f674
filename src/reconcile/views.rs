//! The shapes jobs are shown in, built from the reconciler's state.

use crate::job::{Desired, Job};
use crate::protocol::{JobView, StatusView};
use crate::render::rfc3339_s;
use crate::supervisor::procfs;

fn pid(job: &Job) -> Option<i32> {
    job.obs.run.map(|r| r.pid).filter(|p| *p > 0)
}

pub fn job_view(job: &Job) -> JobView {
    JobView {
        id: job.id.clone(),
        name: job.spec.name.clone(),
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

/// Fills in the listening ports of jobs from one look at /proc.
pub fn fill_ports(views: &mut [(JobView, Option<i32>)]) {
    if views.iter().all(|(_, root)| root.is_none()) {
        return;
    }
    let parents = procfs::parents();
    let listening = procfs::listening_sockets();
    for (view, root) in views {
        if let Some(root) = root {
            let mut pids = procfs::descendants_in(&parents, *root);
            pids.push(*root);
            view.ports = procfs::ports_of(&pids, &listening);
        }
    }
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
        ports: tree_root(job).map_or_else(Vec::new, |root| {
            let mut pids = procfs::descendants(root);
            pids.push(root);
            procfs::ports_of(&pids, &procfs::listening_sockets())
        }),
        allocated_ports: job.obs.allocated_ports.clone(),
        events,
    }
}
