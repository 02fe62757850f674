//! Reports from the supervisor and the probes: a run was spawned (or could not be), became
//! ready, should be evicted (memory, health), or ended.

use super::Reconciler;
use crate::job::Desired;
use crate::plan::backoff_delay;
use crate::spec::RestartPolicy;
use crate::state::{Checks, Ending, JobState, Lifecycle, Then, Why};
use crate::supervisor::files::ChildFile;
use crate::supervisor::{Probe, ProbeContext, Report};

impl Reconciler {
    pub(super) fn on_event(&mut self, report: Report) {
        match report {
            Report::Spawned { id, attempt, result } if self.is_current(&id, attempt) => {
                self.on_spawned(&id, attempt, result)
            }
            Report::Ready { id, attempt } if self.is_current(&id, attempt) => self.on_ready(&id),
            Report::NextSpawned { id, attempt, started } if self.is_next(&id, attempt) => {
                self.on_next_spawned(&id, started)
            }
            Report::Ready { id, attempt } if self.is_next(&id, attempt) => self.promote(&id),
            Report::Exited { id, attempt } if self.is_next(&id, attempt) => self.on_next_exited(&id, attempt),
            Report::Retired { id, pid } => self.on_retired(&id, pid),
            Report::Evict { id, attempt, cause } if self.is_current(&id, attempt) => {
                if let Some(job) = self.jobs.get_mut(&id)
                    && let Lifecycle::Running { evict, .. } | Lifecycle::Ready { evict, .. } = &mut job.obs.life
                {
                    *evict = Some(cause);
                }
            }
            Report::Exited { id, attempt } if self.is_current(&id, attempt) => self.on_exited(&id),
            Report::MainChanged { id, attempt, child } if self.is_current(&id, attempt) => {
                self.on_main_changed(&id, attempt, child)
            }
            // About an older run of the job, or a job since forgotten.
            _ => {}
        }
    }

    fn is_current(&self, id: &str, attempt: u64) -> bool {
        self.jobs.get(id).is_some_and(|j| j.attempt == attempt)
    }

    /// About the new run started beside the job's current one (a start-first replace).
    fn is_next(&self, id: &str, attempt: u64) -> bool {
        self.jobs.get(id).and_then(|j| j.next.as_ref()).is_some_and(|n| n.attempt == attempt)
    }

    fn on_spawned(&mut self, id: &str, attempt: u64, result: Result<ChildFile, String>) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Lifecycle::Starting { shim } = job.obs.life else { return };
        match result {
            Ok(child) => {
                let run =
                    crate::state::RunIds { pid: child.pid, start_time: child.start_time, ..shim.unwrap_or_default() };
                job.obs.ever_spawned = true;
                let checks = if job.spec.oneshot {
                    Checks::UntilExit
                } else {
                    Checks::Until { deadline_ms: now + job.spec.ready.timeout.as_millis() as u64 }
                };
                self.set_life(id, Lifecycle::Running { run, since_ms: now, checks, evict: None });
                let freed = self.sup.take_freed(id);
                if !freed.is_empty() {
                    self.save(id, Some(("freed-ports", &format!("stopped {}", freed.join("; ")))));
                }
                let detail = format!("pid {}", child.pid);
                self.save(id, Some(("spawned", &detail)));
                self.start_probes(id, attempt, &child);
            }
            Err(error) => {
                let end = Ending { started_ms: None, ..Ending::new(Why::SpawnFailed { error }, now) };
                self.end_run(id, end);
            }
        }
    }

    /// Readiness for a new run (or one adopted before it was ready), health once ready, and
    /// the memory limit for its whole life.
    pub(super) fn start_probes(&mut self, id: &str, attempt: u64, child: &ChildFile) {
        let Some(job) = self.jobs.get(id) else { return };
        let (spec, log_cursor) = (job.spec.clone(), job.obs.log_cursor);
        match job.life() {
            Lifecycle::Ready { .. } => self.start_health(id, attempt, child),
            Lifecycle::Running { checks: Checks::UntilExit, .. } => {}
            Lifecycle::Running { .. } if spec.ready.is_empty() => self.on_ready(id),
            Lifecycle::Running { .. } => {
                let at = ProbeContext { cwd: spec.cwd.clone(), env: spec.env.clone() };
                let probe = Probe::Readiness { ready: spec.ready.clone(), at, log_cursor, run: None };
                self.sup.probe(id, attempt, child, probe);
            }
            _ => return,
        }
        if let Some(limit_mb) = spec.max_rss_mb {
            self.sup.probe(id, attempt, child, Probe::Memory { limit_mb });
        }
        if spec.daemonizes {
            self.sup.probe(id, attempt, child, Probe::MainProcess);
        }
    }

    /// The job's main process is now the daemon its first process left: probes follow it.
    fn on_main_changed(&mut self, id: &str, attempt: u64, child: ChildFile) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let (Lifecycle::Running { run, .. } | Lifecycle::Ready { run, .. } | Lifecycle::Stopping { run, .. }) =
            &mut job.obs.life
        else {
            return;
        };
        run.pid = child.pid;
        run.start_time = child.start_time;
        let detail = format!("daemonized: following pid {}", child.pid);
        self.save(id, Some(("daemonized", &detail)));
        self.sup.stop_probes(id);
        self.start_probes(id, attempt, &child);
    }

    fn on_ready(&mut self, id: &str) {
        let now = self.now();
        let Some(job) = self.jobs.get(id) else { return };
        let Lifecycle::Running { run, since_ms, evict, .. } = job.life().clone() else { return };
        let checked = !job.spec.ready.is_empty();
        let attempt = job.attempt;
        self.set_life(id, Lifecycle::Ready { run, since_ms, ready_ms: now, checked, evict });
        self.start_health(id, attempt, &ChildFile { pid: run.pid, start_time: run.start_time });
        self.save(id, checked.then_some(("ready", "readiness checks passed")));
    }

    /// Health checks run while the job is ready.
    fn start_health(&mut self, id: &str, attempt: u64, child: &ChildFile) {
        let Some(job) = self.jobs.get(id) else { return };
        if let Some(health) = job.spec.health.clone() {
            let at = ProbeContext { cwd: job.spec.cwd.clone(), env: job.spec.env.clone() };
            self.sup.probe(id, attempt, child, Probe::Health { health, at });
        }
    }

    pub(super) fn on_exited(&mut self, id: &str) {
        let now = self.now();
        let Some(job) = self.jobs.get(id) else { return };
        let life = job.life().clone();
        let Some(run) = life.run() else { return };
        let cause = match &life {
            Lifecycle::Stopping { cause, .. } => Some(cause.clone()),
            _ if job.desired == Desired::Stopped => Some(crate::state::Cause::Requested),
            _ => None,
        };
        let (why, code, signal, at_ms) = match self.sup.exit_of(id, Some(&run)) {
            Some(exit) => {
                let why = match cause {
                    Some(cause) => Why::Stopped { cause },
                    None if exit.stopped => Why::StoppedOutside,
                    None if exit.code.is_some_and(|c| job.spec.restarts.stop_exit_codes.contains(&c)) => Why::StopCode,
                    None => Why::OnItsOwn,
                };
                (why, exit.code, exit.signal, exit.unix_ms)
            }
            None => (Why::SupervisorDied { cause }, None, None, now),
        };
        // What the run was goes with how it ended.
        let end = Ending {
            code,
            signal,
            started_ms: life.started_ms(),
            ready_ms: life.ready_ms(),
            pid: life.pid(),
            ..Ending::new(why, at_ms)
        };
        self.end_run(id, end);
    }

    /// Records the end of a run, then forgets the job (removed from its file) or lets the
    /// restart policy decide what follows.
    pub(super) fn end_run(&mut self, id: &str, end: Ending) {
        self.sup.stop_probes(id);
        // A new run beside it went with it: its shim stopped everything of the job.
        if let Some(job) = self.jobs.get_mut(id) {
            job.next = None;
            job.retiring = None;
        }
        let (kind, reason) = (end.event_kind(), end.describe());
        if !self.set_life(id, Lifecycle::Ended { end, then: Then::Stays }) {
            return;
        }
        self.save(id, Some((kind, &reason)));
        self.release_unused_sockets(id);
        if self.jobs.get(id).is_some_and(|j| j.obs.remove_when_stopped) {
            return self.forget(id);
        }
        self.schedule_restart(id);
    }

    /// A job stopped for good (on request, or gone from its file) closes its listening sockets,
    /// unless another copy of the same job may still use them. A run still stopping keeps its own
    /// copy of them until it ends.
    pub(super) fn release_unused_sockets(&mut self, id: &str) {
        let Some(job) = self.jobs.get(id) else { return };
        if job.desired == Desired::Running && !job.obs.remove_when_stopped {
            return;
        }
        let Some(listen) = job.listen() else { return };
        let shared = self.jobs.values().any(|j| {
            j.id != id
                && (j.desired == Desired::Running || j.life().has_process())
                && j.listen().is_some_and(|l| l.key == listen.key)
        });
        if !shared {
            self.sup.release_listen(&listen.key);
        }
    }

    /// Settings changed in place: the current run's probes start over with them.
    pub(super) fn restart_probes(&mut self, id: &str) {
        self.sup.stop_probes(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        let attempt = job.attempt;
        let timeout_ms = job.spec.ready.timeout.as_millis() as u64;
        let now = self.clock.now_ms();
        // Readiness checks that start over get the full timeout again.
        if let Lifecycle::Running { checks: checks @ Checks::Until { .. }, .. } = &mut job.obs.life {
            *checks = Checks::Until { deadline_ms: now + timeout_ms };
        }
        if let Some(pid) = job.life().pid()
            && let Some(run) = job.life().run()
        {
            self.start_probes(id, attempt, &ChildFile { pid, start_time: run.start_time });
        }
    }

    /// Decides whether the restart policy brings an ended run back, and when.
    fn schedule_restart(&mut self, id: &str) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Lifecycle::Ended { end, .. } = job.life().clone() else { return };
        let outcome = end.outcome();
        let wanted = end.restartable()
            && job.desired == Desired::Running
            && job.obs.generation == job.generation
            && match job.spec.restart {
                RestartPolicy::Never => false,
                RestartPolicy::OnCrash => outcome == JobState::Crashed,
                RestartPolicy::Always => matches!(outcome, JobState::Crashed | JobState::Exited),
            };
        if !wanted {
            return;
        }
        // A clean exit under `always` is not a crash: it restarts after the plain backoff, and
        // never counts towards giving up.
        let limits = &job.spec.restarts;
        let stable =
            end.started_ms.is_some_and(|t| end.at_ms.saturating_sub(t) >= limits.min_uptime.as_millis() as u64);
        job.obs.crash_streak = match outcome {
            JobState::Crashed if stable => 1,
            JobState::Crashed => job.obs.crash_streak + 1,
            _ => 0,
        };
        if outcome == JobState::Crashed && job.obs.crash_streak > limits.max {
            let crashes = job.obs.crash_streak;
            self.set_life(id, Lifecycle::Ended { end, then: Then::GaveUp { crashes } });
            let reason = self.jobs[id].life().reason();
            return self.save(id, Some(("gave-up", &reason)));
        }
        let delay = match limits.delay {
            Some(constant) => constant,
            None => backoff_delay(job.spec.backoff, job.obs.crash_streak.max(1), jitter()),
        };
        let delay_ms = delay.as_millis() as u64;
        self.set_life(id, Lifecycle::BackingOff { end, until_ms: now + delay_ms, delay_ms });
        let reason = self.jobs[id].life().reason();
        self.save(id, Some(("restart-scheduled", &reason)));
    }
}

/// A number in 0..1 that differs between calls; good enough to spread restarts apart.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}
