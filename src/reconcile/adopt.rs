//! Daemon start: rebuild the jobs from the database and re-adopt the ones still running.

use super::Reconciler;
use crate::error::Result;
use crate::job::Job;
use crate::state::JobState;
use crate::supervisor::{files, procfs};

impl Reconciler {
    pub(super) fn adopt_all(&mut self) -> Result<()> {
        for stored in self.store.load()? {
            let job = Job {
                id: stored.id.clone(),
                spec: stored.spec,
                desired: stored.desired,
                generation: stored.generation,
                created_ms: stored.created_ms,
                stop_grace: None,
                obs: stored.obs,
                attempt: 1,
                stopping: None,
                timers: Default::default(),
                evict: None,
            };
            self.jobs.insert(stored.id.clone(), job);
            self.restore_timers(&stored.id);
            self.adopt(&stored.id);
        }
        Ok(())
    }

    /// Instants do not survive a restart; rebuild them from the stored wall-clock times.
    fn restore_timers(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let now_ms = files::unix_ms();
        let now = std::time::Instant::now();
        let at = |ms: u64| now.checked_add(std::time::Duration::from_millis(ms.saturating_sub(now_ms)));
        let ago = |ms: u64| now.checked_sub(std::time::Duration::from_millis(now_ms.saturating_sub(ms)));
        job.timers.restart_at = job.obs.restart_at_ms.and_then(at);
        if job.obs.state.is_alive() {
            job.timers.run_started = job.obs.started_ms.and_then(ago);
        }
    }

    /// A job that was alive when the last daemon stopped is either still running (its shim is the
    /// same process, by pid and start time) and watched again, or has ended meanwhile and is
    /// recorded as such from the exit file its shim left.
    fn adopt(&mut self, id: &str) {
        let dir = self.home.job_dir(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.obs.state.is_terminal() {
            return;
        }
        let Some(run) = job.obs.run else {
            // Never launched: the plan starts it (or not) like any pending job.
            return;
        };
        if procfs::is_same_process(run.shim_pid, run.shim_start) {
            if job.obs.state == JobState::Starting
                && let Some(child) = files::read_child(&dir)
            {
                // The handshake was lost with the old daemon; the shim's file tells the same.
                self.on_event(super::Event::Spawned { id: id.to_string(), attempt: 1, result: Ok(child) });
            }
            let run = self.jobs[id].obs.run.unwrap_or(run);
            self.watch(id, 1, run);
            if self.jobs[id].obs.state != JobState::Starting {
                // Readiness, health and memory probes start again for the adopted run.
                self.start_probes(id, files::ChildFile { pid: run.pid, start_time: run.start_time });
            }
            self.save(id, Some(("adopted", "re-adopted by a new daemon")));
        } else {
            self.on_exited(id, 1);
        }
    }
}
