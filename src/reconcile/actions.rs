//! Applying the plan's actions through the supervisor.

use super::Reconciler;
use crate::job::Job;
use crate::plan::{Action, FORCE_MARGIN};
use crate::state::{Blocked, Cause, Checks, Ending, Lifecycle, Why};
use crate::supervisor::Report;
use crate::supervisor::files::SpawnFile;
use std::collections::BTreeMap;

/// A run recorded as starting, for its shim to be launched at the end of the round.
pub(super) struct Prepared {
    id: String,
    attempt: u64,
    /// `--force` for this run (see [`SpawnFile::force`]).
    force: bool,
}

impl Reconciler {
    pub(super) fn apply(&mut self, action: Action) {
        match action {
            Action::Spawn(id) => self.spawn(&id),
            Action::Stop(id, cause) => self.stop(&id, cause),
            Action::ForceKill(id) => self.force_kill(&id),
            Action::Wait(id, blocked) => self.hold(&id, blocked),
            Action::Fail(id, blocked) => self.fail(&id, blocked),
            Action::ReadyTimeout(id) => self.readiness_gave_up(&id),
            Action::Cron(id) => self.cron_fired(&id),
            Action::StartNext(id) => self.start_next(&id),
            Action::AbortNext(id) => self.next_timed_out(&id),
        }
    }

    /// The schedule came due: a new run, except while a run of a one-shot (or a first run held
    /// back by its dependencies) is still going: at most one run at a time.
    fn cron_fired(&mut self, id: &str) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        job.obs.cron_from_ms = Some(now);
        let schedule = job.spec.cron.clone().unwrap_or_default();
        let busy = match job.life() {
            Lifecycle::Running { .. } | Lifecycle::Ready { .. } => job.spec.oneshot,
            Lifecycle::Waiting { .. } | Lifecycle::Starting { .. } | Lifecycle::Stopping { .. } => true,
            Lifecycle::BackingOff { .. } | Lifecycle::Ended { .. } => false,
        };
        let detail = if busy {
            format!("cron {schedule}: skipped, the last run is still going")
        } else {
            job.want_new_run();
            format!("cron {schedule}: new run")
        };
        self.save(id, Some(("cron", &detail)));
    }

    fn hold(&mut self, id: &str, blocked: Blocked) {
        let Some(job) = self.jobs.get(id) else { return };
        if self.set_life(id, job.life().held_back(blocked)) {
            self.save(id, None);
        }
    }

    /// A dependency will not meet its condition: the job ends without starting, its new spec
    /// counted as run (so it is not tried again until something asks for a new run).
    fn fail(&mut self, id: &str, blocked: Blocked) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        job.obs.generation = job.generation;
        self.end_run(id, Ending::new(Why::DependencyFailed { blocked }, now));
    }

    fn readiness_gave_up(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let timeout_ms = job.spec.ready.timeout.as_millis() as u64;
        if let Lifecycle::Running { checks, .. } = &mut job.obs.life {
            *checks = Checks::GaveUp { timeout_ms };
            let reason = job.obs.life.reason();
            self.save(id, Some(("ready-timeout", &reason)));
        }
    }

    fn spawn(&mut self, id: &str) {
        let log_cursor = self.sup.log_end(id);
        let ports = self.allocate_ports(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        let restart = match job.life() {
            Lifecycle::BackingOff { .. } | Lifecycle::Waiting { restart: true, .. } => {
                job.obs.generation == job.generation
            }
            _ => false,
        };
        if restart {
            job.obs.restart_count += 1;
        }
        job.launches += 1;
        job.attempt = job.launches;
        job.stop_grace = None;
        job.obs.log_cursor = log_cursor;
        job.obs.generation = job.generation;
        let force = std::mem::take(&mut job.force_next);
        job.obs.allocated_ports = ports;
        let attempt = job.attempt;
        if !self.set_life(id, Lifecycle::Starting { shim: None }) {
            return;
        }
        self.save(id, None);
        self.prepared.push(Prepared { id: id.to_string(), attempt, force });
    }

    /// Launches the runs that this round's spawns prepared. The jobs and their runs are on disk
    /// before any process exists (a daemon that dies from here on finds the records, and each
    /// shim by its lock if it was launched), and again with the shims' pids before any handshake
    /// (a daemon that dies then still knows each shim by its pid): two commits for a round that
    /// starts any number of jobs, not two for each job.
    pub(super) fn launch_prepared(&mut self) {
        if self.prepared.is_empty() {
            return;
        }
        let prepared = std::mem::take(&mut self.prepared);
        if let Err(e) = self.checkpoint() {
            for Prepared { id, attempt, .. } in prepared {
                let result = Err(format!("cannot record the job before starting it: {}", e.message));
                self.on_event(Report::Spawned { id, attempt, result });
            }
            return;
        }
        for Prepared { id, attempt, force } in prepared {
            // Made at launch, one at a time: a round of 100 launches holds no 100 specs at once.
            let Some(job) = self.jobs.get(&id) else { continue };
            let spawn = spawn_file(job, &job.obs.allocated_ports, force);
            match self.sup.launch(&id, attempt, &spawn) {
                Ok(run) => {
                    self.set_life(&id, Lifecycle::Starting { shim: Some(run) });
                    self.save(&id, None);
                }
                Err(error) => self.on_event(Report::Spawned { id, attempt, result: Err(error) }),
            }
        }
        let _ = self.checkpoint();
    }

    /// A free TCP port for each `--allocate-port` variable: the job's previous one while it is
    /// still free (so a restart keeps its address), and never one another job of this daemon holds.
    pub(super) fn allocate_ports(&self, id: &str) -> BTreeMap<String, u16> {
        let Some(job) = self.jobs.get(id) else { return Default::default() };
        // Most jobs ask for no port: they need no look at every other job's (which, for each of
        // the N launches of an `up`, made it quadratic).
        if job.spec.allocate_ports.is_empty() {
            return Default::default();
        }
        let held: std::collections::HashSet<u16> =
            self.jobs.values().filter(|j| j.id != id).flat_map(|j| j.obs.allocated_ports.values().copied()).collect();
        let mut out = BTreeMap::new();
        for var in &job.spec.allocate_ports {
            let previous = job.obs.allocated_ports.get(var).copied();
            let taken = |p: u16| held.contains(&p) || out.values().any(|v| *v == p);
            if let Some(port) = self.sup.free_port(previous, &taken) {
                out.insert(var.clone(), port);
            }
        }
        out
    }

    fn stop(&mut self, id: &str, cause: Cause) {
        let now = self.now();
        let Some(job) = self.jobs.get(id) else { return };
        let (run, since_ms, ready_ms) = match job.life() {
            Lifecycle::Running { run, since_ms, .. } => (*run, *since_ms, None),
            Lifecycle::Ready { run, since_ms, ready_ms, .. } => (*run, *since_ms, Some(*ready_ms)),
            _ => return,
        };
        let grace = job.grace();
        let detail = format!(
            "{}: {}, SIGKILL after {}",
            cause.describe(),
            job.spec.stop.describe(),
            humantime::format_duration(grace)
        );
        let until_ms = now + (grace + FORCE_MARGIN).as_millis() as u64;
        // A new run started beside this one goes with it: the shim's stop reaches every run.
        if let Some(job) = self.jobs.get_mut(id) {
            job.next = None;
        }
        self.set_life(id, Lifecycle::Stopping { run, since_ms, ready_ms, cause, until_ms, forced: 0 });
        self.sup.stop(id, &run, grace);
        self.save(id, Some(("stop", &detail)));
    }

    fn force_kill(&mut self, id: &str) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let Lifecycle::Stopping { run, until_ms, forced, .. } = &mut job.obs.life else { return };
        *forced += 1;
        // Keep checking until the shim's exit is seen; the second time the shim goes too.
        *until_ms = now + FORCE_MARGIN.as_millis() as u64;
        let (run, kill_shim) = (*run, *forced > 1);
        self.sup.force_kill(id, &run, kill_shim);
        let detail = if kill_shim {
            "the job's supervisor did not finish the stop; SIGKILL to it and every process of the job"
        } else {
            "grace expired; SIGKILL to every process of the job"
        };
        self.save(id, Some(("force-kill", detail)));
    }
}

/// What the shim runs for a run of `job` from its current spec, with these `--allocate-port`
/// ports.
pub(super) fn spawn_file(job: &Job, ports: &BTreeMap<String, u16>, force: bool) -> SpawnFile {
    let mut env = job.spec.env.clone();
    env.extend(ports.iter().map(|(k, v)| (k.clone(), v.to_string())));
    env.insert(crate::supervisor::procfs::JOB_ID_ENV.into(), job.id.clone());
    SpawnFile {
        label: job.qualified_name(),
        argv: job.spec.argv(),
        cwd: job.spec.cwd.clone(),
        env,
        grace_ms: job.spec.grace.as_millis() as u64,
        pty: job.spec.pty.clone(),
        notify: job.spec.ready.notify,
        stop: job.spec.stop.clone(),
        daemonizes: job.spec.daemonizes,
        pidfile: job.spec.pidfile.clone(),
        mirror: job.spec.mirror.clone(),
        log_limits: job.spec.log_limits.resolve(),
        listen: job.listen(),
        fetch: job.spec.fetch,
        free_ports: job.spec.declared_ports(),
        force,
        container: job.spec.container_run(),
    }
}
