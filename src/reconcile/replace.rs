//! Start-first replace (`update = "start-first"`): a ready job's new spec starts as a new run
//! beside the current one, under the same shim; once the new run is ready it is promoted (the
//! shim stops the old run as its spec says, and the job's run is the new one), and a new run that
//! fails (exits, or is not ready in time) is stopped while the old run goes on serving. The plan
//! decides when ([`crate::plan`]'s `start_first`); this is the doing.

use super::Reconciler;
use crate::job::{NextFailed, NextRun};
use crate::state::Lifecycle;
use crate::supervisor::files::{ChildFile, NextStarted};
use crate::supervisor::{Probe, ProbeContext};
use std::time::Duration;

/// How long the shim may take to start a new run, on top of its readiness timeout.
const START_PATIENCE: Duration = Duration::from_secs(10);

impl Reconciler {
    /// Asks the shim for a new run from the job's current spec (replacing one still starting
    /// from an older spec).
    pub(super) fn start_next(&mut self, id: &str) {
        let now = self.now();
        if self.jobs.get(id).is_some_and(|j| j.next.is_some()) {
            self.drop_next(id);
        }
        let log_cursor = self.sup.log_end(id);
        let ports = self.allocate_ports(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Lifecycle::Ready { run, .. } = *job.life() else { return };
        job.launches += 1;
        let attempt = job.launches;
        let spawn = super::actions::spawn_file(job, &ports, false);
        let timeout = job.spec.ready.timeout + START_PATIENCE;
        job.next = Some(NextRun {
            attempt,
            generation: job.generation,
            child: None,
            since_ms: now,
            deadline_ms: now + timeout.as_millis() as u64,
            log_cursor,
            ports,
        });
        let detail = format!("start-first: starting the new run beside pid {}", run.pid);
        self.save(id, Some(("replacing", &detail)));
        // The new spec is on disk before its process exists: a daemon that dies from here on
        // replaces the job again, and the shim's new run with it.
        if let Err(e) = self.checkpoint() {
            return self.fail_next(id, format!("cannot record the job before starting its new run: {}", e.message));
        }
        self.sup.start_next(id, attempt, &run, &spawn);
    }

    /// The shim answered: the new run runs (its readiness is checked from now on), could not
    /// start (the old one goes on), or cannot run beside the old one (replaced stop-first).
    pub(super) fn on_next_spawned(&mut self, id: &str, started: NextStarted) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Some(next) = job.next.as_mut() else { return };
        match started {
            NextStarted::Ok { pid, start_time, run } => {
                let child = ChildFile { pid, start_time };
                next.child = Some((child.clone(), run));
                next.deadline_ms = now + job.spec.ready.timeout.as_millis() as u64;
                let (attempt, log_cursor) = (next.attempt, next.log_cursor);
                let spec = &job.spec;
                if spec.ready.is_empty() {
                    return self.promote(id);
                }
                let at = ProbeContext { cwd: spec.cwd.clone(), env: spec.env.clone() };
                let probe = Probe::Readiness { ready: spec.ready.clone(), at, log_cursor, run: Some(run) };
                self.sup.probe(id, attempt, &child, probe);
                let detail = format!("start-first: new run pid {pid} started beside the old one");
                self.save(id, Some(("spawned", &detail)));
            }
            NextStarted::Error { error } => self.fail_next(id, format!("the new run could not start: {error}")),
            NextStarted::Refused { refused } => {
                let generation = next.generation;
                job.next = None;
                let reason = format!("start-first is not possible ({refused}): replacing stop-first");
                job.next_failed = Some(NextFailed { generation, reason: reason.clone(), stop_first: true });
                self.save(id, Some(("replacing", &reason)));
            }
        }
    }

    /// The new run is ready: it becomes the job's run, and the shim stops the old one.
    pub(super) fn promote(&mut self, id: &str) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Lifecycle::Ready { run, .. } = *job.life() else { return };
        let Some(NextRun { attempt, generation, child: Some((child, _)), since_ms, log_cursor, ports, .. }) =
            job.next.take()
        else {
            return;
        };
        let old = run.pid;
        let retiring = ChildFile { pid: run.pid, start_time: run.start_time };
        job.retiring = Some(retiring.clone());
        let detail = format!(
            "start-first: new run pid {} is ready; the old one (pid {old}) is asked to stop: {}, SIGKILL after {}",
            child.pid,
            job.spec.stop.describe(),
            humantime::format_duration(job.grace())
        );
        job.obs.generation = generation;
        job.obs.log_cursor = log_cursor;
        job.obs.allocated_ports = ports;
        let checked = !job.spec.ready.is_empty();
        let attempt_now = job.attempt;
        let new_run = crate::state::RunIds { pid: child.pid, start_time: child.start_time, ..run };
        // The old run's probes and the new run's readiness go; its health and memory start.
        self.sup.stop_probes(id);
        self.sup.promote_next(id, attempt, &run);
        self.sup.watch_retiring(id, &retiring);
        self.set_life(id, Lifecycle::Ready { run: new_run, since_ms, ready_ms: now, checked, evict: None });
        self.save(id, Some(("replaced", &detail)));
        self.start_probes(id, attempt_now, &child);
    }

    /// The replaced run's first process has exited.
    pub(super) fn on_retired(&mut self, id: &str, pid: i32) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.retiring.take_if(|r| r.pid == pid).is_some() {
            let detail = format!("the replaced run (pid {pid}) has exited");
            self.save(id, Some(("retired", &detail)));
        }
    }

    /// The new run was not ready (or not even started) by its deadline.
    pub(super) fn next_timed_out(&mut self, id: &str) {
        let Some(job) = self.jobs.get(id) else { return };
        let Some(next) = &job.next else { return };
        let reason = match next.child {
            Some(_) => {
                let timeout = humantime::format_duration(job.spec.ready.timeout);
                format!("the new run was not ready within {timeout} and was stopped")
            }
            None => "the job's supervisor did not start the new run in time".into(),
        };
        self.fail_next(id, reason);
    }

    /// The new run's process ended before it was promoted.
    pub(super) fn on_next_exited(&mut self, id: &str, attempt: u64) {
        let how = match self.sup.next_exit(id, attempt) {
            Some(exit) => crate::state::describe_exit(exit.code, exit.signal),
            None => "it is gone".into(),
        };
        self.fail_next(id, format!("the new run exited before it was ready ({how})"));
    }

    /// The new run goes; the old one goes on serving, and the same spec is not tried again until
    /// something changes (the job's state says why).
    fn fail_next(&mut self, id: &str, why: String) {
        let Some(job) = self.jobs.get(id) else { return };
        let Some(next) = &job.next else { return };
        let generation = next.generation;
        let pid = job.life().pid().unwrap_or(0);
        self.drop_next(id);
        let reason = format!("{why}; the old run (pid {pid}) goes on");
        if let Some(job) = self.jobs.get_mut(id) {
            job.next_failed = Some(NextFailed { generation, reason: reason.clone(), stop_first: false });
        }
        self.save(id, Some(("replace-failed", &reason)));
    }

    /// Stops the new run and what watches it; the job's run keeps its probes.
    fn drop_next(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Some(next) = job.next.take() else { return };
        let (attempt, life) = (job.attempt, job.life().clone());
        if let Some(run) = life.run() {
            // Even before the shim answered: the abort, its latest request, is what it acts on.
            self.sup.abort_next(id, next.attempt, &run);
            self.sup.stop_probes(id);
            self.start_probes(id, attempt, &ChildFile { pid: run.pid, start_time: run.start_time });
        }
    }
}
