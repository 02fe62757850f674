//! Applying the plan's actions through the supervisor.

use super::{Msg, Reconciler, events::Event};
use crate::job::{Cause, Job, RunIds, Stopping};
use crate::plan::{Action, FORCE_MARGIN};
use crate::state::JobState;
use crate::supervisor::{files::SpawnFile, launch};
use std::time::Instant;

/// Moves a job to a new state through the transition table. A move the table does not allow is a
/// bug in the caller; it is logged and refused rather than taking the daemon down.
pub(super) fn transition(job: &mut Job, to: JobState, reason: &str) -> bool {
    if job.obs.state == to {
        job.obs.reason = reason.to_string();
        return true;
    }
    if !job.obs.state.can_become(to) {
        super::problems::transition_refused(format!("{:?} -> {to:?} for job {}", job.obs.state, job.id));
        return false;
    }
    job.obs.state = to;
    job.obs.reason = reason.to_string();
    true
}

impl Reconciler {
    pub(super) fn apply(&mut self, action: Action) {
        match action {
            Action::Spawn(id) => self.spawn(&id),
            Action::Stop(id, cause) => self.stop(&id, cause),
            Action::ForceKill(id) => self.force_kill(&id),
            Action::Wait(id, reason) => {
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.obs.reason = reason;
                    self.save(&id, None);
                }
            }
            Action::ReadyTimeout(id) => {
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.obs.ready_timed_out = true;
                    let reason = format!(
                        "not ready: readiness checks did not pass within {}",
                        humantime::format_duration(job.spec.ready.timeout)
                    );
                    job.obs.reason = reason.clone();
                    self.save(&id, Some(("ready-timeout", &reason)));
                }
            }
        }
    }

    fn spawn(&mut self, id: &str) {
        let log_offset = crate::supervisor::probes::log_end(&self.home.job_dir(id));
        let ports = self.allocate_ports(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        job.obs.allocated_ports = ports;
        let restart = job.timers.restart_at.is_some() && job.obs.generation == job.generation;
        if restart {
            job.obs.restart_count += 1;
        }
        job.attempt += 1;
        job.stopping = None;
        job.stop_grace = None;
        job.evict = None;
        job.timers = Default::default();
        job.obs.log_offset = log_offset;
        job.obs.restart_at_ms = None;
        job.obs.ready_timed_out = false;
        job.obs.generation = job.generation;
        job.obs.run = None;
        job.obs.exit_code = None;
        job.obs.exit_signal = None;
        job.obs.ready_ms = None;
        job.obs.ended_ms = None;
        transition(job, JobState::Starting, "starting");
        let spawn = SpawnFile {
            argv: job.spec.argv(),
            cwd: job.spec.cwd.clone(),
            env: {
                let mut env = job.spec.env.clone();
                env.extend(job.obs.allocated_ports.iter().map(|(k, v)| (k.clone(), v.to_string())));
                env.insert(crate::supervisor::procfs::JOB_ID_ENV.into(), id.to_string());
                env
            },
            grace_ms: job.spec.grace.as_millis() as u64,
            pty: job.spec.pty.clone(),
            notify: job.spec.ready.notify,
        };
        let attempt = job.attempt;
        // The job and this run are on disk before any process exists: a daemon that dies from
        // here on finds the record, and the shim (by its lock) if it was launched.
        self.save(id, None);
        if let Err(e) = self.checkpoint() {
            let result = Err(format!("cannot record the job before starting it: {}", e.message));
            return self.on_event(Event::Spawned { id: id.to_string(), attempt, result });
        }
        let Some(job) = self.jobs.get_mut(id) else { return };
        match launch::launch(&self.home.job_dir(id), &spawn) {
            Ok(launched) => {
                job.obs.run =
                    Some(RunIds { shim_pid: launched.shim_pid, shim_start: launched.shim_start, ..RunIds::default() });
                // Saved (and committed) before the handshake, so a daemon that dies right now
                // still knows the shim by its pid.
                self.save(id, None);
                let _ = self.checkpoint();
                let (tx, id) = (self.tx.clone(), id.to_string());
                let (shim_pid, shim_start) = (launched.shim_pid, launched.shim_start);
                tokio::spawn(async move {
                    let result = launched.handshake().await;
                    let _ = tx.send(Msg::Event(Event::Spawned { id: id.clone(), attempt, result }));
                    watch_exit(tx, id, attempt, shim_pid, shim_start).await;
                });
            }
            Err(e) => self.on_event(Event::Spawned {
                id: id.to_string(),
                attempt,
                result: Err(format!("cannot start the job's supervisor: {e}")),
            }),
        }
    }

    /// A free TCP port for each `--allocate-port` variable: the job's previous one while it is
    /// still free (so a restart keeps its address), and never one another job of this daemon holds.
    fn allocate_ports(&self, id: &str) -> std::collections::BTreeMap<String, u16> {
        let Some(job) = self.jobs.get(id) else { return Default::default() };
        let taken: std::collections::HashSet<u16> =
            self.jobs.values().filter(|j| j.id != id).flat_map(|j| j.obs.allocated_ports.values().copied()).collect();
        let mut out = std::collections::BTreeMap::new();
        for var in &job.spec.allocate_ports {
            let previous = job.obs.allocated_ports.get(var).copied().filter(|p| port_is_free(*p));
            let port = previous.or_else(|| {
                (0..64).find_map(|_| {
                    let p = std::net::TcpListener::bind(("0.0.0.0", 0)).ok()?.local_addr().ok()?.port();
                    (!taken.contains(&p) && !out.values().any(|v| *v == p)).then_some(p)
                })
            });
            if let Some(port) = port {
                out.insert(var.clone(), port);
            }
        }
        out
    }

    fn stop(&mut self, id: &str, cause: Cause) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Some(run) = job.obs.run else { return };
        let grace = job.grace();
        let why = cause.describe();
        job.stopping = Some(Stopping { force_at: Instant::now() + grace + FORCE_MARGIN, cause, forced: 0 });
        let detail =
            format!("{why}: SIGTERM to the process group, SIGKILL after {}", humantime::format_duration(grace));
        if let Err(e) = launch::request_stop(&self.home.job_dir(id), run.shim_pid, grace) {
            crate::warn!("bgrun: cannot ask job {id} to stop: {e}");
        }
        self.save(id, Some(("stop", &detail)));
    }

    fn force_kill(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let (Some(run), Some(stopping)) = (job.obs.run, job.stopping.as_mut()) else { return };
        stopping.forced += 1;
        // Keep checking until the shim's exit is seen; the second time the shim goes too.
        stopping.force_at = Instant::now() + FORCE_MARGIN;
        let kill_shim = stopping.forced > 1;
        launch::force_kill(id, run.shim_pid, run.shim_start, run.pid, kill_shim);
        let detail = if kill_shim {
            "the job's supervisor did not finish the stop; SIGKILL to it and every process of the job"
        } else {
            "grace expired; SIGKILL to every process of the job"
        };
        self.save(id, Some(("force-kill", detail)));
    }

    /// Watches an adopted or freshly launched shim and reports its exit.
    pub(super) fn watch(&self, id: &str, attempt: u64, run: RunIds) {
        let (tx, id) = (self.tx.clone(), id.to_string());
        tokio::spawn(watch_exit(tx, id, attempt, run.shim_pid, run.shim_start));
    }
}

async fn watch_exit(tx: tokio::sync::mpsc::UnboundedSender<Msg>, id: String, attempt: u64, pid: i32, start: u64) {
    if let Err(e) = launch::wait_exit(pid, start).await {
        crate::warn!("bgrun: cannot watch the supervisor of job {id}: {e}");
    }
    let _ = tx.send(Msg::Event(Event::Exited { id, attempt }));
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}
