//! Events from the supervisor and the probes: a run was spawned (or could not be), became ready,
//! should be evicted (memory, health), or ended.

use super::Reconciler;
use super::actions::transition;
use crate::job::{Cause, Desired};
use crate::plan::{BURST_LIMIT, STABLE_AFTER, backoff_delay};
use crate::spec::RestartPolicy;
use crate::state::JobState;
use crate::supervisor::files::{self, ChildFile};
use crate::supervisor::{launch, probes};
use std::time::{Duration, Instant};

pub enum Event {
    Spawned { id: String, attempt: u64, result: Result<ChildFile, String> },
    Ready { id: String, attempt: u64 },
    Evict { id: String, attempt: u64, cause: Cause },
    Exited { id: String, attempt: u64 },
}

impl Reconciler {
    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Spawned { id, attempt, result } => self.on_spawned(&id, attempt, result),
            Event::Ready { id, attempt } => self.on_ready(&id, attempt),
            Event::Evict { id, attempt, cause } => {
                if let Some(job) = self.jobs.get_mut(&id)
                    && job.attempt == attempt
                    && job.obs.state.is_alive()
                {
                    job.evict = Some(cause);
                }
            }
            Event::Exited { id, attempt } => self.on_exited(&id, attempt),
        }
    }

    fn on_spawned(&mut self, id: &str, attempt: u64, result: Result<ChildFile, String>) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.attempt != attempt || job.obs.state != JobState::Starting {
            return;
        }
        match result {
            Ok(child) => {
                let now = files::unix_ms();
                if let Some(run) = &mut job.obs.run {
                    run.pid = child.pid;
                    run.start_time = child.start_time;
                }
                job.obs.started_ms = Some(now);
                job.obs.ever_spawned = true;
                job.timers.run_started = Some(Instant::now());
                transition(job, JobState::Running, "running");
                let detail = format!("pid {}", child.pid);
                self.save(id, Some(("spawned", &detail)));
                self.start_probes(id, child);
            }
            Err(reason) => {
                job.obs.ended_ms = Some(files::unix_ms());
                transition(job, JobState::Crashed, &reason);
                self.save(id, Some(("spawn-failed", &reason)));
                self.schedule_restart(id);
            }
        }
    }

    /// Readiness for a new run, and the memory probe for its whole life.
    pub(super) fn start_probes(&mut self, id: &str, child: ChildFile) {
        let dir = self.home.job_dir(id);
        let http = self.http();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let attempt = job.attempt;
        if job.obs.state == JobState::Ready {
            self.start_health(id);
        } else if job.spec.ready.is_empty() {
            self.on_ready(id, attempt);
        } else {
            job.timers.ready_deadline = Some(Instant::now() + job.spec.ready.timeout);
            let (tx, id2, watch) = (self.tx.clone(), id.to_string(), self.logs.clone());
            let (cwd, ready, offset) = (job.spec.cwd.clone(), job.spec.ready.clone(), job.obs.log_offset);
            let task = tokio::spawn(async move {
                probes::readiness(watch, http, dir, cwd, ready, offset).await;
                let _ = tx.send(super::Msg::Event(Event::Ready { id: id2, attempt }));
            });
            self.probes.entry(id.to_string()).or_default().push(task.abort_handle());
        }
        let Some(job) = self.jobs.get(id) else { return };
        if let Some(limit_mb) = job.spec.max_rss_mb {
            let (tx, id2) = (self.tx.clone(), id.to_string());
            let task = tokio::spawn(async move {
                if let Some(rss_mb) = probes::memory(child.pid, child.start_time, limit_mb).await {
                    let cause = Cause::MaxRss { rss_mb, limit_mb };
                    let _ = tx.send(super::Msg::Event(Event::Evict { id: id2, attempt, cause }));
                }
            });
            self.probes.entry(id.to_string()).or_default().push(task.abort_handle());
        }
    }

    fn on_ready(&mut self, id: &str, attempt: u64) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.attempt != attempt || job.obs.state != JobState::Running {
            return;
        }
        job.obs.ready_ms = Some(files::unix_ms());
        job.timers.ready_deadline = None;
        let reason = if job.spec.ready.is_empty() { "running (no readiness checks)" } else { "ready" };
        transition(job, JobState::Ready, reason);
        self.start_health(id);
        if !self.jobs[id].spec.ready.is_empty() {
            self.save(id, Some(("ready", "readiness checks passed")));
        } else {
            self.save(id, None);
        }
    }

    /// Health checks run while the job is ready.
    fn start_health(&mut self, id: &str) {
        let http = self.http();
        let Some(job) = self.jobs.get(id) else { return };
        if let (Some(health), Some(run)) = (job.spec.health.clone(), job.obs.run) {
            let (tx, id2, attempt) = (self.tx.clone(), id.to_string(), job.attempt);
            let task = tokio::spawn(async move {
                if let Some((failures, last)) = probes::health(http, health, run.pid, run.start_time).await {
                    let cause = Cause::Unhealthy { failures, last };
                    let _ = tx.send(super::Msg::Event(Event::Evict { id: id2, attempt, cause }));
                }
            });
            self.probes.entry(id.to_string()).or_default().push(task.abort_handle());
        }
    }

    pub(super) fn on_exited(&mut self, id: &str, attempt: u64) {
        let dir = self.home.job_dir(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.attempt != attempt || job.obs.state.is_terminal() {
            return;
        }
        let cause = job.stopping.take().map(|s| s.cause);
        let cause = cause.or_else(|| (job.desired == Desired::Stopped).then_some(Cause::Requested));
        let (state, reason, kind) = match files::read_exit(&dir) {
            Some(exit) => {
                job.obs.exit_code = exit.code;
                job.obs.exit_signal = exit.signal;
                job.obs.ended_ms = Some(exit.unix_ms);
                let how = describe_exit(exit.code, exit.signal);
                match cause {
                    Some(Cause::Requested) => (JobState::Killed, format!("killed on request ({how})"), "killed"),
                    Some(Cause::Replaced) => (JobState::Killed, format!("replaced by a new spec ({how})"), "replaced"),
                    Some(other) => (JobState::Crashed, format!("{} ({how})", other.describe()), "crashed"),
                    None if exit.stopped => (JobState::Killed, format!("killed ({how})"), "killed"),
                    None if exit.code == Some(0) => (JobState::Exited, how, "exited"),
                    None => (JobState::Crashed, how, "crashed"),
                }
            }
            None => {
                // The shim died without a word (SIGKILLed, say). Its job can no longer be
                // supervised or logged, so none of its processes is left running unseen.
                let job_pid = files::read_child(&dir).map_or(job.obs.run.map_or(0, |r| r.pid), |c| c.pid);
                launch::kill_job_processes(id, job_pid);
                job.obs.ended_ms = Some(files::unix_ms());
                match cause {
                    Some(Cause::Requested) => (
                        JobState::Killed,
                        "killed on request (its supervisor did not finish the stop and was killed)".to_string(),
                        "killed",
                    ),
                    Some(Cause::Replaced) => {
                        (JobState::Killed, "replaced by a new spec (supervisor killed)".to_string(), "replaced")
                    }
                    _ => (
                        JobState::Crashed,
                        "its supervisor process died unexpectedly; every process of the job was stopped".to_string(),
                        "crashed",
                    ),
                }
            }
        };
        transition(job, state, &reason);
        let forget = job.obs.remove_when_stopped;
        self.stop_probes(id);
        self.save(id, Some((kind, &reason)));
        if forget {
            self.forget(id);
            return;
        }
        self.schedule_restart(id);
    }

    fn stop_probes(&mut self, id: &str) {
        for task in self.probes.remove(id).unwrap_or_default() {
            task.abort();
        }
    }

    /// Settings changed in place: the current run's probes start over with them.
    pub(super) fn restart_probes(&mut self, id: &str) {
        self.stop_probes(id);
        let Some(job) = self.jobs.get(id) else { return };
        if let (true, Some(run)) = (job.obs.state.is_alive() && job.obs.state != JobState::Starting, job.obs.run) {
            self.start_probes(id, ChildFile { pid: run.pid, start_time: run.start_time });
        }
    }

    /// Decides whether the restart policy brings an ended run back, and when.
    fn schedule_restart(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let wanted = job.desired == Desired::Running
            && job.obs.generation == job.generation
            && match job.spec.restart {
                RestartPolicy::Never => false,
                RestartPolicy::OnCrash => job.obs.state == JobState::Crashed,
                RestartPolicy::Always => matches!(job.obs.state, JobState::Crashed | JobState::Exited),
            };
        if !wanted {
            return;
        }
        // A clean exit under `always` is not a crash: it restarts after the plain backoff, and
        // never counts towards giving up.
        let crashed = job.obs.state == JobState::Crashed;
        let stable = job.timers.run_started.is_some_and(|t| t.elapsed() >= STABLE_AFTER);
        if crashed {
            job.obs.crash_streak = if stable { 1 } else { job.obs.crash_streak + 1 };
        } else {
            job.obs.crash_streak = 0;
        }
        if job.obs.crash_streak >= BURST_LIMIT {
            let reason = format!(
                "{}; not restarting after {BURST_LIMIT} crashes in a row (`bgrun run --name` starts it again)",
                job.obs.reason
            );
            job.obs.reason = reason.clone();
            self.save(id, Some(("gave-up", &reason)));
            return;
        }
        let delay = backoff_delay(job.spec.backoff, job.obs.crash_streak.max(1), jitter());
        job.timers.restart_at = Some(Instant::now() + delay);
        job.obs.restart_at_ms = Some(files::unix_ms() + delay.as_millis() as u64);
        let reason = format!("{}; restarting in {}", job.obs.reason, humantime::format_duration(round_ms(delay)));
        job.obs.reason = reason.clone();
        self.save(id, Some(("restart-scheduled", &reason)));
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// A number in 0..1 that differs between calls; good enough to spread restarts apart.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map_or_else(|_| format!("signal {s}"), |sig| sig.as_str().to_string());
            format!("killed by {name}")
        }
        (None, None) => "exited".to_string(),
    }
}
