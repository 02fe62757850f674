//! Daemon start: rebuild the jobs from the database and re-adopt the ones still running.

use super::Reconciler;
use crate::error::Result;
use crate::job::{Desired, Job};
use crate::state::{Checks, Lifecycle};
use crate::supervisor::Report;
use crate::supervisor::files::ChildFile;

/// The attempt number of a run a new daemon adopts (its launches count from there).
const ADOPTED: u64 = 1;

impl Reconciler {
    pub(super) fn adopt_all(&mut self) -> Result<()> {
        let (stored, unreadable) = self.store.load()?;
        for id in unreadable {
            crate::warn!("bgrun: skipping unreadable job {id} in the state database");
            self.problems.storage_failed(&format!("job {id} in the state database is unreadable"));
        }
        for stored in stored {
            let id = stored.id.clone();
            let mut job = Job::new(stored.id, stored.spec, stored.created_ms);
            job.desired = stored.desired;
            job.generation = stored.generation;
            job.obs = stored.obs;
            job.attempt = ADOPTED;
            job.launches = ADOPTED;
            self.jobs.insert(job);
            self.adopt(&id);
        }
        // A job directory the database does not know (its record was never committed, or was
        // forgotten while its removal failed) goes, its shim (if alive) stopped and logged.
        for id in self.sup.job_dirs() {
            if !self.jobs.contains_key(&id) {
                self.sup.stop_stray(&id);
            }
        }
        Ok(())
    }

    /// After a reboot: every job that was to be running, and whose run the reboot ended, starts
    /// again (in `after` order: the plan sees to it), and says why. A job stopped on request
    /// stays stopped, and a one-shot that had finished well stays finished.
    pub fn resurrect(&mut self) {
        let ended: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.desired == Desired::Running && !j.life().has_process())
            .filter(|j| !(j.spec.oneshot && j.life().ending().is_some_and(|e| e.succeeded())))
            .map(|j| j.id.clone())
            .collect();
        for id in ended {
            if let Some(job) = self.jobs.get_mut(&id) {
                job.want_new_run();
                self.save(&id, Some(("resurrect", "started again after the machine rebooted")));
            }
        }
    }

    /// A job that had a process when the last daemon stopped is either still running (its shim
    /// is the same process, by pid and start time) and watched again, or has ended meanwhile and
    /// is recorded as such from the exit file its shim left.
    fn adopt(&mut self, id: &str) {
        let Some(job) = self.jobs.get(id) else { return };
        let run = match job.life() {
            Lifecycle::Starting { shim: None } => match self.sup.live_shim(id) {
                // Launched by a daemon that died before it recorded the shim: the shim's lock
                // tells. Without one, the run never started and the plan starts it again.
                Some(run) => run,
                None => {
                    self.set_life(id, Lifecycle::Waiting { blocked: None, restart: false });
                    return;
                }
            },
            life => match life.run() {
                Some(run) => run,
                None => return,
            },
        };
        if !self.sup.is_alive(&run) {
            if matches!(self.jobs[id].life(), Lifecycle::Starting { shim: None }) {
                self.set_life(id, Lifecycle::Starting { shim: Some(run) });
            }
            return self.on_exited(id);
        }
        self.sup.watch(id, ADOPTED, run);
        match self.jobs[id].life().clone() {
            Lifecycle::Starting { .. } => {
                self.set_life(id, Lifecycle::Starting { shim: Some(run) });
                // The handshake was lost with the old daemon; the shim's file tells the same,
                // once the shim has written it (it may still be starting the job).
                match self.sup.child(id) {
                    Some(child) => {
                        self.on_event(Report::Spawned { id: id.to_string(), attempt: ADOPTED, result: Ok(child) })
                    }
                    None => self.sup.await_child(id, ADOPTED, run),
                }
            }
            // Readiness (against the deadline it had), health and memory probes start again.
            Lifecycle::Running { checks, .. } => {
                if checks == (Checks::Until { deadline_ms: u64::MAX }) {
                    // Converted from an earlier daemon's record, which kept no deadline.
                    self.restart_probes(id);
                } else {
                    self.start_probes(id, ADOPTED, &ChildFile { pid: run.pid, start_time: run.start_time });
                }
            }
            Lifecycle::Ready { .. } => {
                self.start_probes(id, ADOPTED, &ChildFile { pid: run.pid, start_time: run.start_time })
            }
            _ => {}
        }
        self.save(id, Some(("adopted", "re-adopted by a new daemon")));
    }
}
