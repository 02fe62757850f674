//! `plan(jobs, now)`: what must happen for the observed state to match the desired state.
//! A pure function: no I/O, no clock of its own (time is the `now` argument and the instants in
//! each job's timers), so it is tested without processes, and applying its answer and planning
//! again asks for nothing new.

use crate::job::{Cause, Desired, Job};
use crate::state::JobState;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the daemon trusts a shim to finish a stop beyond the job's grace.
pub const FORCE_MARGIN: Duration = Duration::from_secs(1);
/// Restart delays double per consecutive crash up to this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A run that lasts this long resets the crash streak.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// After this many crashes in a row without a stable run, the job stays crashed.
pub const BURST_LIMIT: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new run of the job from its current spec.
    Spawn(String),
    /// Ask the job's shim to stop it (SIGTERM, then SIGKILL after the grace).
    Stop(String, Cause),
    /// The shim did not finish the stop in time: kill everything directly.
    ForceKill(String),
    /// The job cannot start yet; the reason says why.
    Wait(String, String),
    /// The readiness checks ran out of time; the job keeps running, not ready.
    ReadyTimeout(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to plan again even if nothing else happens.
    pub wake_at: Option<Instant>,
}

impl Plan {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

pub fn plan(jobs: &BTreeMap<String, Job>, now: Instant) -> Plan {
    let mut plan = Plan::default();
    let mut blocked = Vec::new();
    for job in jobs.values() {
        let state = job.obs.state;
        let id = || job.id.clone();
        if state.is_alive() && job.obs.run.is_some() {
            if let Some(stopping) = &job.stopping {
                if now >= stopping.force_at {
                    plan.actions.push(Action::ForceKill(id()));
                } else {
                    plan.wake(stopping.force_at);
                }
                continue;
            }
            if state == JobState::Starting {
                // A run being launched is dealt with once its pid is known.
                continue;
            }
            if job.desired == Desired::Stopped {
                // Dependents stop first: a job waits while one that starts after it is stopping.
                if !has_stopping_dependent(job, jobs) {
                    plan.actions.push(Action::Stop(id(), Cause::Requested));
                }
                continue;
            }
            // A new spec that shapes the process: the old run ends, then the plan starts the new.
            if job.obs.generation < job.generation {
                plan.actions.push(Action::Stop(id(), Cause::Replaced));
                continue;
            }
            if let Some(cause) = &job.evict {
                plan.actions.push(Action::Stop(id(), cause.clone()));
                continue;
            }
            if let (Some(limit), Some(started)) = (job.spec.max_runtime, job.timers.run_started) {
                if now >= started + limit {
                    plan.actions.push(Action::Stop(id(), Cause::MaxRuntime(limit)));
                    continue;
                }
                plan.wake(started + limit);
            }
            if state == JobState::Running
                && !job.obs.ready_timed_out
                && let Some(deadline) = job.timers.ready_deadline
            {
                if now >= deadline {
                    plan.actions.push(Action::ReadyTimeout(id()));
                } else {
                    plan.wake(deadline);
                }
            }
            continue;
        }
        // No process: start one if the spec has a generation that has not run yet, or a
        // restart by policy is due.
        let no_process = state.is_terminal() || (state == JobState::Starting && job.obs.run.is_none());
        if job.desired != Desired::Running || !no_process {
            continue;
        }
        let new_generation = job.obs.generation < job.generation;
        if !new_generation && job.timers.restart_at.is_none() {
            continue;
        }
        if !new_generation && let Some(at) = job.timers.restart_at.filter(|at| now < *at) {
            plan.wake(at);
            continue;
        }
        match blocked_by(job, jobs, &[]) {
            None => plan.actions.push(Action::Spawn(id())),
            Some(_) => blocked.push(job),
        }
    }
    // Reasons for waiting are given as of after this pass's spawns, so they do not change again
    // the moment those are applied.
    let spawning: Vec<&str> =
        plan.actions.iter().filter_map(|a| if let Action::Spawn(id) = a { Some(id.as_str()) } else { None }).collect();
    let waits: Vec<Action> = blocked
        .into_iter()
        .filter_map(|job| {
            let reason = blocked_by(job, jobs, &spawning)?;
            (reason != job.obs.reason).then(|| Action::Wait(job.id.clone(), reason))
        })
        .collect();
    plan.actions.extend(waits);
    plan
}

/// The job a dependency name means: the one of that name in the same project.
fn dependency<'a>(job: &Job, name: &str, jobs: &'a BTreeMap<String, Job>) -> Option<&'a Job> {
    jobs.values().find(|j| j.spec.project == job.spec.project && j.spec.name.as_deref() == Some(name))
}

/// True while a job that starts after `job` is still running and being stopped too.
fn has_stopping_dependent(job: &Job, jobs: &BTreeMap<String, Job>) -> bool {
    let Some(name) = job.spec.name.as_deref() else { return false };
    jobs.values().any(|d| {
        d.desired == Desired::Stopped
            && d.obs.state.is_alive()
            && d.spec.after.iter().any(|a| a == name)
            && dependency(d, name, jobs).is_some_and(|dep| dep.id == job.id)
    })
}

/// Why a job's `after` dependencies do not let it start yet, if they do not. A dependency is
/// satisfied once Ready, or once it has exited 0 (a one-shot). Jobs in `spawning` are about to
/// start.
pub fn blocked_by(job: &Job, jobs: &BTreeMap<String, Job>, spawning: &[&str]) -> Option<String> {
    for name in &job.spec.after {
        let Some(dep) = dependency(job, name, jobs) else {
            return Some(format!("waiting for {name}: no such job"));
        };
        if spawning.contains(&dep.id.as_str()) {
            return Some(format!("waiting for {name} to be ready"));
        }
        let reason = match dep.obs.state {
            JobState::Ready => continue,
            JobState::Exited if dep.obs.exit_code == Some(0) => continue,
            JobState::Running if dep.obs.ready_timed_out => format!("dependency {name} did not become ready in time"),
            JobState::Starting | JobState::Running => format!("waiting for {name} to be ready"),
            JobState::Crashed if dep.timers.restart_at.is_some() => format!("waiting for {name} to restart"),
            other => format!("dependency {name} is {}", other.as_str()),
        };
        return Some(reason);
    }
    None
}

/// The delay before restart number `streak` (1 for the first crash in a row): `base` doubled per
/// crash, capped, plus up to 10% jitter (`jitter` in 0..1) so many crashing jobs do not restart in
/// lockstep. A zero base stays zero.
pub fn backoff_delay(base: Duration, streak: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1u32 << streak.saturating_sub(1).min(20));
    let capped = doubled.min(BACKOFF_CAP.max(base));
    capped + capped.mul_f64(0.1 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Observed, Stopping, Timers};
    use crate::spec::RestartPolicy;
    use proptest::prelude::*;

    fn job(id: &str, desired: Desired, generation: u64, state: JobState, obs_gen: u64) -> Job {
        let mut spec = crate::spec::tests::sample();
        spec.name = Some(id.into());
        Job {
            id: id.into(),
            spec,
            desired,
            generation,
            created_ms: 0,
            stop_grace: None,
            obs: Observed { state, generation: obs_gen, ..Observed::default() },
            attempt: 0,
            stopping: None,
            timers: Timers::default(),
            evict: None,
        }
    }

    fn running(id: &str) -> Job {
        let mut j = job(id, Desired::Running, 1, JobState::Running, 1);
        j.obs.run = Some(Default::default());
        j
    }

    fn jobs(list: Vec<Job>) -> BTreeMap<String, Job> {
        list.into_iter().map(|j| (j.id.clone(), j)).collect()
    }

    #[test]
    fn a_new_job_is_spawned() {
        let js = jobs(vec![job("a", Desired::Running, 1, JobState::Starting, 0)]);
        assert_eq!(plan(&js, Instant::now()).actions, vec![Action::Spawn("a".into())]);
    }

    #[test]
    fn new_generation_spawns_once() {
        let now = Instant::now();
        let js = jobs(vec![job("a", Desired::Running, 1, JobState::Exited, 0)]);
        assert_eq!(plan(&js, now).actions, vec![Action::Spawn("a".into())]);
        let js = jobs(vec![job("a", Desired::Running, 1, JobState::Exited, 1)]);
        assert!(plan(&js, now).actions.is_empty(), "a finished run of the same generation stays finished");
    }

    #[test]
    fn stop_then_force_after_deadline() {
        let now = Instant::now();
        let mut j = running("a");
        j.desired = Desired::Stopped;
        assert_eq!(plan(&jobs(vec![j.clone()]), now).actions, vec![Action::Stop("a".into(), Cause::Requested)]);
        j.stopping = Some(Stopping { force_at: now + Duration::from_secs(6), cause: Cause::Requested, forced: 0 });
        let p = plan(&jobs(vec![j.clone()]), now);
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(now + Duration::from_secs(6)));
        let later = now + Duration::from_secs(6);
        assert_eq!(plan(&jobs(vec![j]), later).actions, vec![Action::ForceKill("a".into())]);
    }

    #[test]
    fn starting_jobs_are_not_signalled() {
        let mut j = job("a", Desired::Stopped, 2, JobState::Starting, 2);
        j.obs.run = Some(Default::default());
        assert!(plan(&jobs(vec![j]), Instant::now()).actions.is_empty());
    }

    #[test]
    fn restart_waits_for_its_backoff() {
        let now = Instant::now();
        let mut j = job("a", Desired::Running, 1, JobState::Crashed, 1);
        j.spec.restart = RestartPolicy::OnCrash;
        j.timers.restart_at = Some(now + Duration::from_secs(2));
        let p = plan(&jobs(vec![j.clone()]), now);
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(now + Duration::from_secs(2)));
        assert_eq!(plan(&jobs(vec![j.clone()]), now + Duration::from_secs(2)).actions, vec![Action::Spawn("a".into())]);
        // A kill during the backoff ends the loop.
        j.desired = Desired::Stopped;
        assert!(plan(&jobs(vec![j]), now + Duration::from_secs(3)).actions.is_empty());
    }

    #[test]
    fn max_runtime_stops_the_run() {
        let now = Instant::now();
        let mut j = running("a");
        j.spec.max_runtime = Some(Duration::from_secs(30));
        j.timers.run_started = Some(now);
        let p = plan(&jobs(vec![j.clone()]), now + Duration::from_secs(29));
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(now + Duration::from_secs(30)));
        assert_eq!(
            plan(&jobs(vec![j]), now + Duration::from_secs(30)).actions,
            vec![Action::Stop("a".into(), Cause::MaxRuntime(Duration::from_secs(30)))]
        );
    }

    #[test]
    fn readiness_times_out_once() {
        let now = Instant::now();
        let mut j = running("a");
        j.timers.ready_deadline = Some(now);
        assert_eq!(plan(&jobs(vec![j.clone()]), now).actions, vec![Action::ReadyTimeout("a".into())]);
        j.obs.ready_timed_out = true;
        assert!(plan(&jobs(vec![j]), now).actions.is_empty());
    }

    #[test]
    fn dependents_wait_for_ready_or_a_clean_exit() {
        let now = Instant::now();
        let mut app = job("app", Desired::Running, 1, JobState::Starting, 0);
        app.spec.after = vec!["db".into()];
        let db = running("db");
        let p = plan(&jobs(vec![app.clone(), db.clone()]), now);
        assert_eq!(p.actions, vec![Action::Wait("app".into(), "waiting for db to be ready".into())]);
        let mut ready = db.clone();
        ready.obs.state = JobState::Ready;
        assert!(plan(&jobs(vec![app.clone(), ready]), now).actions.contains(&Action::Spawn("app".into())));
        let mut done = job("db", Desired::Running, 1, JobState::Exited, 1);
        done.obs.exit_code = Some(0);
        assert!(plan(&jobs(vec![app.clone(), done.clone()]), now).actions.contains(&Action::Spawn("app".into())));
        done.obs.state = JobState::Crashed;
        done.obs.exit_code = Some(1);
        assert_eq!(
            plan(&jobs(vec![app, done]), now).actions,
            vec![Action::Wait("app".into(), "dependency db is crashed".into())]
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let s = Duration::from_secs;
        assert_eq!(backoff_delay(s(2), 1, 0.0), s(2));
        assert_eq!(backoff_delay(s(2), 2, 0.0), s(4));
        assert_eq!(backoff_delay(s(2), 4, 0.0), s(16));
        assert_eq!(backoff_delay(s(2), 30, 0.0), BACKOFF_CAP);
        assert_eq!(backoff_delay(s(2), 1, 1.0), Duration::from_millis(2200));
        assert_eq!(backoff_delay(Duration::ZERO, 5, 1.0), Duration::ZERO);
    }

    /// Applies a plan the way the reconciler would, with every launch and stop succeeding at once.
    fn apply(js: &mut BTreeMap<String, Job>, p: &Plan, now: Instant) {
        for action in &p.actions {
            let j = match action {
                Action::Spawn(id) | Action::Stop(id, _) | Action::ForceKill(id) | Action::Wait(id, _) => {
                    js.get_mut(id).unwrap()
                }
                Action::ReadyTimeout(id) => js.get_mut(id).unwrap(),
            };
            match action {
                Action::Spawn(_) => {
                    j.obs.state = JobState::Starting;
                    j.obs.run = Some(Default::default());
                    j.obs.generation = j.generation;
                    j.timers.restart_at = None;
                }
                Action::Stop(_, cause) => {
                    j.stopping = Some(Stopping { force_at: now + FORCE_MARGIN, cause: cause.clone(), forced: 0 })
                }
                Action::ForceKill(_) => j.stopping.as_mut().unwrap().force_at = now + FORCE_MARGIN,
                Action::Wait(_, reason) => j.obs.reason = reason.clone(),
                Action::ReadyTimeout(_) => j.obs.ready_timed_out = true,
            }
        }
    }

    fn arb_state() -> impl Strategy<Value = JobState> {
        prop::sample::select(JobState::ALL.to_vec())
    }

    fn arb_jobs() -> impl Strategy<Value = BTreeMap<String, Job>> {
        prop::collection::vec((any::<bool>(), 1u64..4, arb_state(), 0u64..4, any::<bool>(), 0usize..6), 0..8).prop_map(
            |specs| {
                let names: Vec<String> = (0..specs.len()).map(|i| format!("j{i}")).collect();
                jobs(
                    specs
                        .iter()
                        .enumerate()
                        .map(|(i, (run, generation, state, obs_gen, has_run, dep))| {
                            let desired = if *run { Desired::Running } else { Desired::Stopped };
                            let mut j = job(&names[i], desired, *generation, *state, (*obs_gen).min(*generation));
                            if *has_run || state.is_alive() && *state != JobState::Starting {
                                j.obs.run = Some(Default::default());
                            }
                            // Dependencies only on earlier jobs: `after` graphs are acyclic.
                            if *dep < i {
                                j.spec.after = vec![names[*dep].clone()];
                            }
                            j
                        })
                        .collect(),
                )
            },
        )
    }

    proptest! {
        #[test]
        fn applying_a_plan_leaves_nothing_new_to_do(mut js in arb_jobs()) {
            let now = Instant::now();
            let first = plan(&js, now);
            apply(&mut js, &first, now);
            let second = plan(&js, now);
            prop_assert!(second.actions.is_empty(), "second plan: {:?}", second.actions);
        }

        #[test]
        fn nothing_starts_before_its_dependencies(js in arb_jobs()) {
            for action in plan(&js, Instant::now()).actions {
                if let Action::Spawn(id) = action {
                    prop_assert_eq!(blocked_by(&js[&id], &js, &[]), None);
                }
            }
        }

        #[test]
        fn plan_is_deterministic(js in arb_jobs()) {
            let now = Instant::now();
            prop_assert_eq!(plan(&js, now), plan(&js, now));
        }
    }
}
