//! `plan(jobs, now)`: what must happen for the observed state to match the desired state.
//! A pure function: no I/O, no clock of its own (time is the `now` argument), so it is tested
//! without processes and running it twice in a row asks for nothing new the second time, once
//! the first answer has been applied.

use crate::job::{Desired, Job};
use crate::state::JobState;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the daemon trusts a shim to finish a stop beyond the job's grace.
pub const FORCE_MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new run of the job from its current spec.
    Spawn(String),
    /// Ask the job's shim to stop it (SIGTERM, then SIGKILL after the grace).
    Stop(String),
    /// The shim did not finish the stop in time: kill everything directly.
    ForceKill(String),
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
    for job in jobs.values() {
        let state = job.obs.state;
        match job.desired {
            Desired::Running => {
                // A spec generation that has not run yet, and no process: start it. A new job
                // waits in Starting without a process until then.
                let no_process = state.is_terminal() || (state == JobState::Starting && job.obs.run.is_none());
                if no_process && job.obs.generation < job.generation {
                    plan.actions.push(Action::Spawn(job.id.clone()));
                }
            }
            Desired::Stopped => match (state, job.stopping) {
                // A run being launched is stopped once its pid is known.
                (JobState::Starting, _) => {}
                (s, None) if s.is_alive() => plan.actions.push(Action::Stop(job.id.clone())),
                (s, Some(stopping)) if s.is_alive() => {
                    if now >= stopping.force_at {
                        plan.actions.push(Action::ForceKill(job.id.clone()));
                    } else {
                        plan.wake(stopping.force_at);
                    }
                }
                _ => {}
            },
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Observed, Stopping};
    use proptest::prelude::*;

    fn job(id: &str, desired: Desired, generation: u64, state: JobState, obs_gen: u64) -> Job {
        Job {
            id: id.into(),
            spec: crate::spec::tests::sample(),
            desired,
            generation,
            created_ms: 0,
            stop_grace: None,
            obs: Observed { state, generation: obs_gen, ..Observed::default() },
            attempt: 0,
            stopping: None,
        }
    }

    fn jobs(list: Vec<Job>) -> BTreeMap<String, Job> {
        list.into_iter().map(|j| (j.id.clone(), j)).collect()
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
    fn a_new_job_is_spawned() {
        let js = jobs(vec![job("a", Desired::Running, 1, JobState::Starting, 0)]);
        assert_eq!(plan(&js, Instant::now()).actions, vec![Action::Spawn("a".into())]);
    }

    #[test]
    fn stop_then_force_after_deadline() {
        let now = Instant::now();
        let mut j = job("a", Desired::Stopped, 2, JobState::Running, 1);
        assert_eq!(plan(&jobs(vec![j.clone()]), now).actions, vec![Action::Stop("a".into())]);
        j.stopping = Some(Stopping { force_at: now + Duration::from_secs(6) });
        let p = plan(&jobs(vec![j.clone()]), now);
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(now + Duration::from_secs(6)));
        let later = now + Duration::from_secs(6);
        assert_eq!(plan(&jobs(vec![j]), later).actions, vec![Action::ForceKill("a".into())]);
    }

    #[test]
    fn starting_jobs_are_not_signalled() {
        let js = jobs(vec![job("a", Desired::Stopped, 2, JobState::Starting, 2)]);
        assert!(plan(&js, Instant::now()).actions.is_empty());
    }

    /// Applies a plan the way the reconciler would, with every launch and stop succeeding at once.
    fn apply(js: &mut BTreeMap<String, Job>, p: &Plan, now: Instant) {
        for action in &p.actions {
            match action {
                Action::Spawn(id) => {
                    let j = js.get_mut(id).unwrap();
                    j.obs.state = JobState::Running;
                    j.obs.generation = j.generation;
                }
                Action::Stop(id) => {
                    js.get_mut(id).unwrap().stopping = Some(Stopping { force_at: now + FORCE_MARGIN });
                }
                Action::ForceKill(id) => {
                    let j = js.get_mut(id).unwrap();
                    j.obs.state = JobState::Killed;
                    j.stopping = None;
                }
            }
        }
    }

    fn arb_state() -> impl Strategy<Value = JobState> {
        prop::sample::select(JobState::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn applying_a_plan_leaves_nothing_new_to_do(
            specs in prop::collection::vec((any::<bool>(), 1u64..4, arb_state(), 0u64..4), 0..12)
        ) {
            let now = Instant::now();
            let mut js = jobs(specs.iter().enumerate().map(|(i, (run, generation, state, obs_gen))| {
                let desired = if *run { Desired::Running } else { Desired::Stopped };
                job(&format!("j{i}"), desired, *generation, *state, (*obs_gen).min(*generation))
            }).collect());
            let first = plan(&js, now);
            apply(&mut js, &first, now);
            let second = plan(&js, now);
            prop_assert!(second.actions.is_empty(), "second plan: {:?}", second.actions);
        }

        #[test]
        fn plan_is_deterministic(
            specs in prop::collection::vec((any::<bool>(), 1u64..4, arb_state(), 0u64..4), 0..12)
        ) {
            let now = Instant::now();
            let js = jobs(specs.iter().enumerate().map(|(i, (run, generation, state, obs_gen))| {
                let desired = if *run { Desired::Running } else { Desired::Stopped };
                job(&format!("j{i}"), desired, *generation, *state, *obs_gen)
            }).collect());
            prop_assert_eq!(plan(&js, now), plan(&js, now));
        }
    }
}
