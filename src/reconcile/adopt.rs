//! Daemon start: rebuild the jobs from the database and re-adopt the ones still running.

use super::Reconciler;
use crate::error::Result;
use crate::job::{Job, RunIds};
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
        self.stop_unknown_shims();
        Ok(())
    }

    /// Reports the job's process once a shim that was still starting it writes `child.json`. A rare
    /// path (a daemon died within the few milliseconds of a launch), so a short poll bounded by
    /// the shim's life is enough.
    fn await_child_file(&self, id: &str, dir: std::path::PathBuf, run: RunIds) {
        let (tx, id) = (self.tx.clone(), id.to_string());
        tokio::spawn(async move {
            while procfs::is_same_process(run.shim_pid, run.shim_start) {
                if let Some(child) = files::read_child(&dir) {
                    let _ = tx.send(super::Msg::Event(super::Event::Spawned { id, attempt: 1, result: Ok(child) }));
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
    }

    /// A job directory the database does not know (its record was never committed, or was
    /// forgotten while its removal failed) is removed; a shim still running in one is asked to
    /// stop its job, and the daemon log says so.
    fn stop_unknown_shims(&mut self) {
        let Ok(dirs) = std::fs::read_dir(self.home.root().join("jobs")) else { return };
        for entry in dirs.flatten() {
            let Some(id) = entry.file_name().to_str().map(String::from) else { continue };
            if self.jobs.contains_key(&id) {
                continue;
            }
            let dir = entry.path();
            match files::live_shim(&dir) {
                Some(shim) => {
                    crate::warn!(
                        "bgrun: job directory {} has no record; stopping its supervisor (pid {}) and job",
                        dir.display(),
                        shim.pid
                    );
                    if procfs::is_same_process(shim.pid, shim.start_time) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(shim.pid),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                }
                None => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
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
        let run = match (job.obs.run, job.obs.state) {
            (Some(run), _) => run,
            // Launched by a daemon that died before it recorded the shim: the shim's lock
            // tells. Without one, the run never started and the plan starts it like any other.
            (None, JobState::Starting) => match files::live_shim(&dir) {
                Some(shim) => {
                    let run = RunIds { shim_pid: shim.pid, shim_start: shim.start_time, ..RunIds::default() };
                    job.obs.run = Some(run);
                    run
                }
                None => return,
            },
            (None, _) => return,
        };
        if procfs::is_same_process(run.shim_pid, run.shim_start) {
            if job.obs.state == JobState::Starting {
                // The handshake was lost with the old daemon; the shim's file tells the same,
                // once the shim has written it (it may still be starting the job).
                match files::read_child(&dir) {
                    Some(child) => {
                        self.on_event(super::Event::Spawned { id: id.to_string(), attempt: 1, result: Ok(child) })
                    }
                    None => self.await_child_file(id, dir.clone(), run),
                }
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
