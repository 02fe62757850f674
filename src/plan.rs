//! `plan(jobs, now)`: what must happen for the observed state to match the desired state.
//! A pure function: no I/O, no clock of its own (time is the `now` argument and the instants in
//! each job's timers), so it is tested without processes, and applying its answer and planning
//! again asks for nothing new.

use crate::job::{Desired, Job};
use crate::spec::Condition;
use crate::state::{Blocked, Cause, Checks, Holdup, Lifecycle};
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// How long the daemon trusts a shim to finish a stop beyond the job's grace.
pub const FORCE_MARGIN: Duration = Duration::from_secs(1);
/// Restart delays double per consecutive crash up to this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new run of the job from its current spec.
    Spawn(String),
    /// Ask the job's shim to stop it (SIGTERM, then SIGKILL after the grace).
    Stop(String, Cause),
    /// The shim did not finish the stop in time: kill everything directly.
    ForceKill(String),
    /// The job cannot start yet: a dependency holds it back.
    Wait(String, Blocked),
    /// The job will not start: a dependency ended without meeting its condition.
    Fail(String, Blocked),
    /// The readiness checks ran out of time; the job keeps running, not ready.
    ReadyTimeout(String),
    /// The job's `cron` schedule came due: a new run (unless one of a one-shot is still going).
    Cron(String),
    /// Start a new run from the job's new spec beside its ready one (a start-first replace).
    StartNext(String),
    /// The new run did not get ready (or started) in time: stop it, the old one goes on.
    AbortNext(String),
}

impl Action {
    /// The job the action is for.
    pub fn job(&self) -> &str {
        match self {
            Action::Spawn(id) | Action::Stop(id, _) | Action::ForceKill(id) => id,
            Action::Wait(id, _) | Action::Fail(id, _) => id,
            Action::ReadyTimeout(id) | Action::Cron(id) => id,
            Action::StartNext(id) | Action::AbortNext(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to plan again even if nothing else happens (unix ms).
    pub wake_at: Option<u64>,
}

impl Plan {
    fn wake(&mut self, at: u64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

pub fn plan(jobs: &BTreeMap<String, Job>, now: u64) -> Plan {
    let index = Index::new(jobs);
    let mut plan = Plan::default();
    let mut blocked = Vec::new();
    for job in jobs.values() {
        let id = || job.id.clone();
        if cron_due(job, now, &mut plan) {
            plan.actions.push(Action::Cron(id()));
            continue;
        }
        match job.life() {
            Lifecycle::Stopping { until_ms, .. } => {
                if now >= *until_ms {
                    plan.actions.push(Action::ForceKill(id()));
                } else {
                    plan.wake(*until_ms);
                }
            }
            // A run being launched is dealt with once its pid is known.
            Lifecycle::Starting { .. } => {}
            Lifecycle::Running { since_ms, evict, .. } | Lifecycle::Ready { since_ms, evict, .. } => {
                if let Some(action) = plan_running(job, &index, *since_ms, evict.as_ref(), now, &mut plan) {
                    plan.actions.push(action);
                } else if let Lifecycle::Running { checks: Checks::Until { deadline_ms }, .. } = job.life()
                    // A job waiting for its dependents to stop is on its way out, not to ready.
                    && job.desired == Desired::Running
                {
                    if now >= *deadline_ms {
                        plan.actions.push(Action::ReadyTimeout(id()));
                    } else {
                        plan.wake(*deadline_ms);
                    }
                }
            }
            // No process: start one if the job wants to run, a spec that has not run yet waits,
            // or a restart by policy is due.
            life @ (Lifecycle::Waiting { .. } | Lifecycle::BackingOff { .. } | Lifecycle::Ended { .. }) => {
                if job.desired != Desired::Running {
                    continue;
                }
                let due = match life {
                    Lifecycle::Waiting { .. } => true,
                    _ if job.has_new_generation() => true,
                    Lifecycle::BackingOff { until_ms, .. } if now < *until_ms => {
                        plan.wake(*until_ms);
                        false
                    }
                    Lifecycle::BackingOff { .. } => true,
                    _ => false,
                };
                if due {
                    match index.blocked_by(job, &Soon::default()) {
                        None => plan.actions.push(Action::Spawn(id())),
                        Some(_) => blocked.push(job),
                    }
                }
            }
        }
    }
    // Reasons for waiting are given as of after this pass's spawns, stops and failures, so they
    // do not change again the moment those are applied. A failure can fail a dependent in turn:
    // failures are found until there are no more (one round per link of the chain).
    let mut soon = Soon::default();
    if !blocked.is_empty() {
        for action in &plan.actions {
            soon.note(jobs, action);
        }
    }
    loop {
        let before = plan.actions.len();
        blocked.retain(|job| match index.blocked_by(job, &soon) {
            Some(why) if why.is_failed() => {
                let fail = Action::Fail(job.id.clone(), why);
                soon.note(jobs, &fail);
                plan.actions.push(fail);
                false
            }
            _ => true,
        });
        if plan.actions.len() == before {
            break;
        }
    }
    let waits: Vec<Action> = blocked
        .into_iter()
        .filter_map(|job| {
            let why = index.blocked_by(job, &soon)?;
            let already = matches!(job.life(), Lifecycle::Waiting { blocked: Some(b), .. } if *b == why);
            (!already).then(|| Action::Wait(job.id.clone(), why))
        })
        .collect();
    plan.actions.extend(waits);
    plan
}

/// True when the job's `cron` schedule has come due; otherwise arms the wake-up for it.
fn cron_due(job: &Job, now: u64, plan: &mut Plan) -> bool {
    let Some(expression) = &job.spec.cron else { return false };
    if job.desired != Desired::Running {
        return false;
    }
    let Ok(schedule) = crate::schedule::Schedule::parse(expression) else { return false };
    let from = job.obs.cron_from_ms.unwrap_or(job.created_ms);
    let Some(due) = schedule.next_after(from) else { return false };
    if now >= due {
        return true;
    }
    plan.wake(due);
    false
}

/// What a running job needs now, if anything: a stop, or a step of a start-first replace; arms
/// the wake-up for its runtime limit.
fn plan_running(
    job: &Job,
    index: &Index,
    since_ms: u64,
    evict: Option<&Cause>,
    now: u64,
    plan: &mut Plan,
) -> Option<Action> {
    let stop = |cause| Some(Action::Stop(job.id.clone(), cause));
    if job.desired == Desired::Stopped {
        // Dependents stop first: a job waits while one that starts after it is stopping.
        return if index.has_stopping_dependent(job) { None } else { stop(Cause::Requested) };
    }
    if job.obs.generation < job.generation {
        if let Some(step) = start_first(job, now, plan) {
            return step;
        }
        // A new spec that shapes the process: the old run ends, then the plan starts the new.
        // The copies of a job with replicas go one at a time, so the others serve meanwhile.
        return if index.rolling_holds(job) { None } else { stop(Cause::Replaced) };
    }
    if let Some(cause) = evict {
        return stop(cause.clone());
    }
    if let Some(limit) = job.spec.max_runtime {
        let end = since_ms.saturating_add(limit.as_millis() as u64);
        if now >= end {
            return stop(Cause::MaxRuntime { limit_ms: limit.as_millis() as u64 });
        }
        plan.wake(end);
    }
    None
}

/// The next step of replacing a ready job start-first (Some(None): nothing to do yet), or None
/// when it is replaced stop-first: its spec says so, its run is not ready (nothing serves to keep
/// serving), or its shim cannot run two runs at once. A new run that failed is not tried again
/// for the same spec: the old run goes on.
fn start_first(job: &Job, now: u64, plan: &mut Plan) -> Option<Option<Action>> {
    let failed = job.next_failed.as_ref().filter(|f| f.generation == job.generation);
    if !job.spec.starts_first()
        || !matches!(job.life(), Lifecycle::Ready { .. })
        || failed.is_some_and(|f| f.stop_first)
    {
        return None;
    }
    Some(match &job.next {
        _ if failed.is_some() => None,
        Some(next) if next.generation == job.generation => {
            if now >= next.deadline_ms {
                Some(Action::AbortNext(job.id.clone()))
            } else {
                plan.wake(next.deadline_ms);
                None
            }
        }
        // None yet, or one for an older spec (which the new one replaces).
        _ => Some(Action::StartNext(job.id.clone())),
    })
}

/// Jobs (or anything about them) by project and name.
type ByName<'a, T> = HashMap<(Option<&'a str>, &'a str), T>;

/// The jobs as a plan looks them up, indexed at most once per plan (and only if a plan needs
/// it). Found by a scan of every job instead, each dependency of each waiting job, and each job a
/// `down` stops (looking for a dependent still stopping), made every plan quadratic; and a plan is
/// made after every event.
struct Index<'a> {
    jobs: &'a BTreeMap<String, Job>,
    /// The job a dependency name means: the one of that name in the same project (the first by id,
    /// should two share it).
    named: OnceCell<ByName<'a, &'a Job>>,
    /// Project and name of every dependency of a job being stopped whose process is still alive.
    awaited_by_stopping: OnceCell<HashSet<(Option<&'a str>, &'a str)>>,
    /// The copies of each job with replicas, by project and the job's name in its file.
    copies: OnceCell<ByName<'a, Vec<&'a Job>>>,
}

/// What the actions planned so far do to each job, as a job that starts after it sees it.
#[derive(Default)]
struct Soon<'a>(HashMap<&'a str, Holdup>);

impl<'a> Soon<'a> {
    fn note(&mut self, jobs: &'a BTreeMap<String, Job>, action: &Action) {
        let holdup = match action {
            Action::Spawn(_) => Holdup::NotReady,
            Action::Stop(..) => Holdup::Stopping,
            Action::ReadyTimeout(_) => Holdup::ReadyTimedOut,
            Action::Fail(..) => Holdup::Failed { how: "a dependency failed".into() },
            Action::ForceKill(_) | Action::Wait(..) | Action::Cron(_) => return,
            // The job's run goes on meanwhile, as it was.
            Action::StartNext(_) | Action::AbortNext(_) => return,
        };
        // A plan has one action per job; the first one counts.
        if let Some((id, _)) = jobs.get_key_value(action.job()) {
            self.0.entry(id.as_str()).or_insert(holdup);
        }
    }
}

impl<'a> Index<'a> {
    fn new(jobs: &'a BTreeMap<String, Job>) -> Index<'a> {
        Index { jobs, named: OnceCell::new(), awaited_by_stopping: OnceCell::new(), copies: OnceCell::new() }
    }

    /// True while another copy of `job` (a job with replicas) goes first: one that is coming up
    /// (starting, being stopped, ended and about to start again, or not ready yet), or one with a
    /// lower index still to be replaced. A copy whose new run failed (or gave up on readiness) holds no one back.
    fn rolling_holds(&self, job: &Job) -> bool {
        let Some(replica) = &job.spec.replica else { return false };
        let copies = self.copies.get_or_init(|| {
            let mut copies: HashMap<_, Vec<&Job>> = HashMap::new();
            for j in self.jobs.values() {
                if let Some(r) = &j.spec.replica {
                    copies.entry((j.spec.project.as_deref(), r.of.as_str())).or_default().push(j);
                }
            }
            copies
        });
        let Some(siblings) = copies.get(&(job.spec.project.as_deref(), replica.of.as_str())) else { return false };
        siblings.iter().filter(|s| s.id != job.id && s.desired == Desired::Running).any(|s| {
            let coming_up = matches!(
                s.life(),
                Lifecycle::Starting { .. }
                    | Lifecycle::Stopping { .. }
                    | Lifecycle::Waiting { .. }
                    | Lifecycle::Running { checks: Checks::Until { .. }, .. }
            ) || (s.has_new_generation() && !s.life().has_process());
            let first = s.obs.generation < s.generation
                && s.life().has_process()
                && s.spec.replica.as_ref().is_some_and(|r| r.index < replica.index);
            coming_up || first
        })
    }

    /// The job a dependency name of `job` means.
    fn dependency(&self, job: &Job, name: &str) -> Option<&'a Job> {
        let named = self.named.get_or_init(|| {
            let mut named = HashMap::new();
            for j in self.jobs.values() {
                if let Some(n) = j.spec.name.as_deref() {
                    named.entry((j.spec.project.as_deref(), n)).or_insert(j);
                }
            }
            named
        });
        named.get(&(job.spec.project.as_deref(), name)).copied()
    }

    /// True while a job that starts after `job` is still running and being stopped too.
    fn has_stopping_dependent(&self, job: &Job) -> bool {
        let Some(name) = job.spec.name.as_deref() else { return false };
        let awaited = self.awaited_by_stopping.get_or_init(|| {
            let stopping = self.jobs.values().filter(|d| d.desired == Desired::Stopped && d.life().has_process());
            stopping
                .flat_map(|d| d.spec.after.iter().map(move |a| (d.spec.project.as_deref(), a.job.as_str())))
                .collect()
        });
        awaited.contains(&(job.spec.project.as_deref(), name))
            && self.dependency(job, name).is_some_and(|dep| dep.id == job.id)
    }

    /// What holds a job back from starting, if its `after` dependencies do: each is judged on its
    /// current run against its condition, as of after the actions `soon` describes.
    fn blocked_by(&self, job: &Job, soon: &Soon) -> Option<Blocked> {
        for dep_of in &job.spec.after {
            let holdup = match self.dependency(job, &dep_of.job) {
                None => Holdup::NoSuchJob,
                Some(dep) => match (soon.0.get(dep.id.as_str()), dep.life()) {
                    (Some(about_to), _) => about_to.clone(),
                    // Ended, and about to run a newer spec: what it did last says nothing.
                    (_, life) if dep.has_new_generation() && !life.has_process() => Holdup::NotReady,
                    (_, life) => match holdup(dep, life, dep_of.condition) {
                        None => continue,
                        Some(h) => h,
                    },
                },
            };
            return Some(Blocked { on: dep_of.job.clone(), condition: dep_of.condition, holdup });
        }
        None
    }
}

/// What holds a job back from starting, if its `after` dependencies do. `soon` are actions about
/// to be applied: a dependency is judged as of after them.
pub fn blocked_by(job: &Job, jobs: &BTreeMap<String, Job>, soon: &[Action]) -> Option<Blocked> {
    let mut planned = Soon::default();
    for action in soon {
        planned.note(jobs, action);
    }
    Index::new(jobs).blocked_by(job, &planned)
}

/// What keeps the current run of `dep` from meeting `condition`, if anything.
fn holdup(dep: &Job, life: &Lifecycle, condition: Condition) -> Option<Holdup> {
    let oneshot = dep.spec.oneshot;
    match (life, condition) {
        (Lifecycle::BackingOff { .. } | Lifecycle::Waiting { restart: true, .. }, _) => Some(Holdup::Restarting),
        (Lifecycle::Waiting { .. } | Lifecycle::Starting { .. }, _) => Some(Holdup::NotReady),
        (Lifecycle::Running { .. } | Lifecycle::Ready { .. } | Lifecycle::Stopping { .. }, Condition::Started) => None,
        (Lifecycle::Stopping { .. }, _) => Some(Holdup::Stopping),
        (Lifecycle::Ready { .. }, Condition::Ready | Condition::ReadyOrEnded) if !oneshot => None,
        (life, Condition::Ready | Condition::ReadyOrEnded) if life.readiness_gave_up() => Some(Holdup::ReadyTimedOut),
        (Lifecycle::Running { .. } | Lifecycle::Ready { .. }, _) => Some(Holdup::NotReady),
        (Lifecycle::Ended { .. }, Condition::ReadyOrEnded) => None,
        (Lifecycle::Ended { end, .. }, Condition::Started) if end.started_ms.is_some() => None,
        (Lifecycle::Ended { end, .. }, Condition::Ready | Condition::Completed) if end.succeeded() => None,
        (Lifecycle::Ended { end, .. }, _) => Some(Holdup::Failed { how: end.short() }),
    }
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
    use crate::job::{NextFailed, NextRun, Observed};
    use crate::spec::RestartPolicy;
    use crate::state::{Ending, RunIds, Then, Why};
    use proptest::prelude::*;

    const NOW: u64 = 1_000_000;

    fn job(id: &str, desired: Desired, generation: u64, life: Lifecycle, obs_gen: u64) -> Job {
        let mut spec = crate::spec::tests::sample();
        spec.name = Some(id.into());
        let mut j = Job::new(id.into(), spec, 0);
        j.desired = desired;
        j.generation = generation;
        j.obs.life = life;
        j.obs.generation = obs_gen;
        j
    }

    fn run() -> RunIds {
        RunIds { pid: 2, start_time: 1, shim_pid: 1, shim_start: 1 }
    }

    fn running_life(checks: Checks) -> Lifecycle {
        Lifecycle::Running { run: run(), since_ms: NOW, checks, evict: None }
    }

    fn ready_life() -> Lifecycle {
        Lifecycle::Ready { run: run(), since_ms: NOW, ready_ms: NOW, checked: true, evict: None }
    }

    fn ended(why: Why, code: Option<i32>) -> Lifecycle {
        Lifecycle::Ended { end: Ending { code, ..Ending::new(why, NOW) }, then: Then::Stays }
    }

    fn running(id: &str) -> Job {
        job(id, Desired::Running, 1, running_life(Checks::Until { deadline_ms: u64::MAX }), 1)
    }

    fn jobs(list: Vec<Job>) -> BTreeMap<String, Job> {
        list.into_iter().map(|j| (j.id.clone(), j)).collect()
    }

    #[test]
    fn a_new_job_is_spawned() {
        let js = jobs(vec![job("a", Desired::Running, 1, Lifecycle::default(), 0)]);
        assert_eq!(plan(&js, NOW).actions, vec![Action::Spawn("a".into())]);
    }

    #[test]
    fn new_generation_spawns_once() {
        let exited = ended(Why::OnItsOwn, Some(0));
        let js = jobs(vec![job("a", Desired::Running, 1, exited.clone(), 0)]);
        assert_eq!(plan(&js, NOW).actions, vec![Action::Spawn("a".into())]);
        let js = jobs(vec![job("a", Desired::Running, 1, exited, 1)]);
        assert!(plan(&js, NOW).actions.is_empty(), "a finished run of the same generation stays finished");
    }

    #[test]
    fn stop_then_force_after_deadline() {
        let mut j = running("a");
        j.desired = Desired::Stopped;
        assert_eq!(plan(&jobs(vec![j.clone()]), NOW).actions, vec![Action::Stop("a".into(), Cause::Requested)]);
        j.obs.life = Lifecycle::Stopping {
            run: run(),
            since_ms: NOW,
            ready_ms: None,
            cause: Cause::Requested,
            until_ms: NOW + 6000,
            forced: 0,
        };
        let p = plan(&jobs(vec![j.clone()]), NOW);
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(NOW + 6000));
        assert_eq!(plan(&jobs(vec![j]), NOW + 6000).actions, vec![Action::ForceKill("a".into())]);
    }

    #[test]
    fn starting_jobs_are_not_signalled() {
        let j = job("a", Desired::Stopped, 2, Lifecycle::Starting { shim: Some(run()) }, 2);
        assert!(plan(&jobs(vec![j]), NOW).actions.is_empty());
    }

    #[test]
    fn restart_waits_for_its_backoff() {
        let end = Ending { code: Some(1), ..Ending::new(Why::OnItsOwn, NOW) };
        let mut j =
            job("a", Desired::Running, 1, Lifecycle::BackingOff { end, until_ms: NOW + 2000, delay_ms: 2000 }, 1);
        j.spec.restart = RestartPolicy::OnCrash;
        let p = plan(&jobs(vec![j.clone()]), NOW);
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(NOW + 2000));
        assert_eq!(plan(&jobs(vec![j.clone()]), NOW + 2000).actions, vec![Action::Spawn("a".into())]);
    }

    #[test]
    fn max_runtime_stops_the_run() {
        let mut j = running("a");
        j.spec.max_runtime = Some(Duration::from_secs(30));
        let p = plan(&jobs(vec![j.clone()]), NOW + 29_000);
        assert!(p.actions.is_empty());
        assert_eq!(p.wake_at, Some(NOW + 30_000));
        assert_eq!(
            plan(&jobs(vec![j]), NOW + 30_000).actions,
            vec![Action::Stop("a".into(), Cause::MaxRuntime { limit_ms: 30_000 })]
        );
    }

    #[test]
    fn readiness_times_out_once() {
        let mut j = running("a");
        j.obs.life = running_life(Checks::Until { deadline_ms: NOW });
        assert_eq!(plan(&jobs(vec![j.clone()]), NOW).actions, vec![Action::ReadyTimeout("a".into())]);
        j.obs.life = running_life(Checks::GaveUp { timeout_ms: 1000 });
        assert!(plan(&jobs(vec![j]), NOW).actions.is_empty());
    }

    fn after(app: &mut Job, dep: &str, condition: Condition) {
        app.spec.after = vec![crate::spec::Dependency::new(dep, condition)];
    }

    #[test]
    fn dependents_wait_for_ready_or_a_clean_exit() {
        let mut app = job("app", Desired::Running, 1, Lifecycle::default(), 0);
        after(&mut app, "db", Condition::Ready);
        let db = running("db");
        let p = plan(&jobs(vec![app.clone(), db.clone()]), NOW);
        let waiting = Blocked { on: "db".into(), condition: Condition::Ready, holdup: Holdup::NotReady };
        assert_eq!(p.actions, vec![Action::Wait("app".into(), waiting.clone())]);
        assert_eq!(waiting.describe(), "waiting for db to be ready");
        let mut ready = db.clone();
        ready.obs.life = ready_life();
        assert!(plan(&jobs(vec![app.clone(), ready]), NOW).actions.contains(&Action::Spawn("app".into())));
        let done = job("db", Desired::Running, 1, ended(Why::OnItsOwn, Some(0)), 1);
        assert!(plan(&jobs(vec![app.clone(), done]), NOW).actions.contains(&Action::Spawn("app".into())));
        // A dependency that ended for good without meeting the condition fails the dependent.
        let crashed = job("db", Desired::Running, 1, ended(Why::OnItsOwn, Some(3)), 1);
        let failed =
            Blocked { on: "db".into(), condition: Condition::Ready, holdup: Holdup::Failed { how: "exit 3".into() } };
        assert_eq!(plan(&jobs(vec![app, crashed]), NOW).actions, vec![Action::Fail("app".into(), failed.clone())]);
        assert_eq!(failed.describe(), "dependency db failed (exit 3)");
    }

    #[test]
    fn each_condition_releases_at_its_moment() {
        let mut app = job("app", Desired::Running, 1, Lifecycle::default(), 0);
        let spawns = |app: &Job, dep: &Job| {
            plan(&jobs(vec![app.clone(), dep.clone()]), NOW).actions.contains(&Action::Spawn("app".into()))
        };
        let running_db = running("db");
        let mut oneshot_ready = job("db", Desired::Running, 1, ready_life(), 1);
        oneshot_ready.spec.oneshot = true;
        let killed = job("db", Desired::Running, 1, ended(Why::Stopped { cause: Cause::Requested }, None), 1);
        let exited = job("db", Desired::Running, 1, ended(Why::OnItsOwn, Some(0)), 1);
        after(&mut app, "db", Condition::Started);
        assert!(spawns(&app, &running_db));
        after(&mut app, "db", Condition::Completed);
        assert!(!spawns(&app, &running_db) && spawns(&app, &exited) && !spawns(&app, &killed));
        after(&mut app, "db", Condition::Ready);
        assert!(!spawns(&app, &oneshot_ready), "a one-shot is ready only once it exited 0");
        assert!(spawns(&app, &exited));
        after(&mut app, "db", Condition::ReadyOrEnded);
        assert!(spawns(&app, &killed), "the CLI's --after releases on any ending");
        assert!(!spawns(&app, &running_db));
    }

    #[test]
    fn a_previous_runs_success_does_not_release_a_dependent() {
        let mut app = job("app", Desired::Running, 1, Lifecycle::default(), 0);
        after(&mut app, "migrate", Condition::Completed);
        // Completed last time, and asked to run again (down, then up): its old exit 0 says nothing.
        let migrate = job("migrate", Desired::Running, 3, ended(Why::OnItsOwn, Some(0)), 1);
        let p = plan(&jobs(vec![app, migrate]), NOW);
        assert!(p.actions.contains(&Action::Spawn("migrate".into())));
        assert!(!p.actions.contains(&Action::Spawn("app".into())), "{:?}", p.actions);
    }

    #[test]
    fn a_job_waiting_to_be_stopped_does_not_time_out_its_readiness() {
        let mut db = job("db", Desired::Stopped, 2, running_life(Checks::Until { deadline_ms: NOW }), 1);
        db.spec.name = Some("db".into());
        let mut app = running("app");
        app.desired = Desired::Stopped;
        after(&mut app, "db", Condition::Ready);
        let p = plan(&jobs(vec![db, app]), NOW);
        assert_eq!(
            p.actions,
            vec![Action::Stop("app".into(), Cause::Requested)],
            "dependents stop first, nothing else"
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
    fn apply(js: &mut BTreeMap<String, Job>, p: &Plan, now: u64) {
        for action in &p.actions {
            let j = js.get_mut(action.job()).unwrap();
            match action {
                Action::Spawn(_) => {
                    j.obs.life = Lifecycle::Starting { shim: Some(run()) };
                    j.obs.generation = j.generation;
                }
                Action::Stop(_, cause) => {
                    j.obs.life = Lifecycle::Stopping {
                        run: run(),
                        since_ms: now,
                        ready_ms: None,
                        cause: cause.clone(),
                        until_ms: now + 1000,
                        forced: 0,
                    }
                }
                Action::ForceKill(_) => {
                    if let Lifecycle::Stopping { until_ms, .. } = &mut j.obs.life {
                        *until_ms = now + 1000;
                    }
                }
                Action::Wait(_, why) => j.obs.life = j.obs.life.held_back(why.clone()),
                Action::Fail(_, why) => {
                    j.obs.generation = j.generation;
                    j.obs.life = ended(Why::DependencyFailed { blocked: why.clone() }, None);
                }
                Action::ReadyTimeout(_) => j.obs.life = running_life(Checks::GaveUp { timeout_ms: 1 }),
                Action::Cron(_) => {
                    j.obs.cron_from_ms = Some(now);
                    j.want_new_run();
                }
                Action::StartNext(_) => j.next = Some(next_run(j.generation, now + 1000)),
                Action::AbortNext(_) => {
                    let failed = NextFailed { generation: j.generation, reason: "not ready".into(), stop_first: false };
                    j.next = None;
                    j.next_failed = Some(failed);
                }
            }
        }
    }

    fn next_run(generation: u64, deadline_ms: u64) -> NextRun {
        NextRun {
            attempt: 9,
            generation,
            child: None,
            since_ms: NOW,
            deadline_ms,
            log_cursor: 0,
            ports: Default::default(),
        }
    }

    /// A ready job behind listening sockets, whose spec has changed since its run started.
    fn served(generation: u64) -> Job {
        let mut j = job("web", Desired::Running, generation, ready_life(), 1);
        j.spec.listen = vec!["127.0.0.1:8080".into()];
        j
    }

    #[test]
    fn a_start_first_job_runs_its_new_spec_beside_the_old_until_ready_or_its_deadline() {
        let mut js = jobs(vec![served(2)]);
        let start = plan(&js, NOW);
        assert_eq!(start.actions, vec![Action::StartNext("web".into())]);
        apply(&mut js, &start, NOW);
        let waiting = plan(&js, NOW);
        assert_eq!(waiting.actions, vec![], "the old run is not stopped meanwhile");
        assert_eq!(waiting.wake_at, Some(NOW + 1000), "the deadline is armed");
        let abort = plan(&js, NOW + 1000);
        assert_eq!(abort.actions, vec![Action::AbortNext("web".into())]);
        apply(&mut js, &abort, NOW + 1000);
        assert_eq!(plan(&js, NOW + 5000), Plan::default(), "a failed spec is not tried again: the old run goes on");
        js.get_mut("web").unwrap().generation = 3;
        assert_eq!(plan(&js, NOW + 5000).actions, vec![Action::StartNext("web".into())], "a newer spec is");
    }

    #[test]
    fn a_newer_spec_replaces_a_new_run_still_starting_and_a_stop_goes_first() {
        let mut web = served(3);
        web.next = Some(next_run(2, NOW + 1000));
        assert_eq!(plan(&jobs(vec![web.clone()]), NOW).actions, vec![Action::StartNext("web".into())]);
        web.desired = Desired::Stopped;
        assert_eq!(plan(&jobs(vec![web]), NOW).actions, vec![Action::Stop("web".into(), Cause::Requested)]);
    }

    #[test]
    fn start_first_falls_back_to_stop_first_when_it_cannot_be() {
        // Nothing ready to keep serving.
        let mut web = served(2);
        web.obs.life = running_life(Checks::Until { deadline_ms: NOW + 5 });
        assert_eq!(plan(&jobs(vec![web]), NOW).actions, vec![Action::Stop("web".into(), Cause::Replaced)]);
        // Its supervisor cannot run two runs at once.
        let mut web = served(2);
        web.next_failed = Some(NextFailed { generation: 2, reason: "a terminal".into(), stop_first: true });
        assert_eq!(plan(&jobs(vec![web]), NOW).actions, vec![Action::Stop("web".into(), Cause::Replaced)]);
        // Asked for stop-first.
        let mut web = served(2);
        web.spec.update = Some(crate::spec::Update::StopFirst);
        assert_eq!(plan(&jobs(vec![web]), NOW).actions, vec![Action::Stop("web".into(), Cause::Replaced)]);
        // No listening sockets: stop-first by default.
        let mut web = served(2);
        web.spec.listen.clear();
        assert_eq!(plan(&jobs(vec![web]), NOW).actions, vec![Action::Stop("web".into(), Cause::Replaced)]);
    }

    #[test]
    fn replicas_are_replaced_one_at_a_time_and_a_failed_copy_holds_no_one_back() {
        let ready = || Lifecycle::Ready { run: run(), since_ms: NOW, ready_ms: NOW, checked: true, evict: None };
        let copy = |i: u32| {
            // Generation 2 wanted, generation 1 running: every copy is to be replaced.
            let mut j = job(&format!("api.{i}"), Desired::Running, 2, ready(), 1);
            j.spec.replica = Some(crate::spec::Replica { of: "api".into(), index: i - 1 });
            (j.id.clone(), j)
        };
        let mut js: BTreeMap<String, Job> = (1..=3).map(copy).collect();
        let stops = |p: &Plan| -> Vec<String> {
            p.actions.iter().filter(|a| matches!(a, Action::Stop(..))).map(|a| a.job().to_string()).collect()
        };
        assert_eq!(stops(&plan(&js, NOW)), ["api.1"], "the first copy goes first, alone");
        // While it comes back (not ready yet), the others keep serving.
        js.get_mut("api.1").unwrap().obs = Observed {
            life: running_life(Checks::Until { deadline_ms: NOW + 5000 }),
            generation: 2,
            ..Default::default()
        };
        assert!(stops(&plan(&js, NOW)).is_empty());
        // Ended, about to start again: still on its way.
        js.get_mut("api.1").unwrap().obs = Observed {
            life: ended(Why::Stopped { cause: Cause::Replaced }, None),
            generation: 1,
            ..Default::default()
        };
        assert!(stops(&plan(&js, NOW)).is_empty());
        js.get_mut("api.1").unwrap().obs = Observed { life: ready(), generation: 2, ..Default::default() };
        assert_eq!(stops(&plan(&js, NOW)), ["api.2"], "then the next");
        // A copy whose new run gave up on readiness does not hold the others forever.
        js.get_mut("api.2").unwrap().obs =
            Observed { life: running_life(Checks::GaveUp { timeout_ms: 1 }), generation: 2, ..Default::default() };
        assert_eq!(stops(&plan(&js, NOW)), ["api.3"]);
    }

    #[test]
    fn a_cron_schedule_comes_due_once_and_wakes_the_plan_until_then() {
        // NOW is 1000 s after the epoch: an every-ten-seconds schedule is due on it.
        let mut j = running("tick");
        j.spec.cron = Some("*/10 * * * * *".into());
        j.obs.cron_from_ms = Some(NOW - 4_000);
        let mut js: BTreeMap<String, Job> = [("tick".to_string(), j)].into();
        let p = plan(&js, NOW - 1);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.wake_at, Some(NOW), "woken when it is due");
        let p = plan(&js, NOW);
        assert_eq!(p.actions, vec![Action::Cron("tick".into())]);
        apply(&mut js, &p, NOW);
        let p = plan(&js, NOW);
        assert_eq!(p.actions, vec![Action::Stop("tick".into(), Cause::Replaced)], "then the old run goes");
        assert_eq!(p.wake_at, Some(NOW + 10_000), "and the next time is armed");
        js.get_mut("tick").unwrap().desired = Desired::Stopped;
        js.get_mut("tick").unwrap().obs.life = ended(Why::OnItsOwn, Some(0));
        assert_eq!(plan(&js, NOW + 60_000), Plan::default(), "a stopped job's schedule sleeps");
    }

    fn arb_life() -> impl Strategy<Value = Lifecycle> {
        prop_oneof![
            Just(Lifecycle::default()),
            Just(Lifecycle::Starting { shim: None }),
            Just(Lifecycle::Starting { shim: Some(run()) }),
            Just(running_life(Checks::Until { deadline_ms: NOW + 5 })),
            Just(running_life(Checks::Until { deadline_ms: NOW })),
            Just(running_life(Checks::GaveUp { timeout_ms: 1 })),
            Just(ready_life()),
            Just(Lifecycle::Stopping {
                run: run(),
                since_ms: NOW,
                ready_ms: None,
                cause: Cause::Requested,
                until_ms: NOW + 5,
                forced: 0
            }),
            (0i32..3).prop_map(|code| ended(Why::OnItsOwn, Some(code))),
            Just(ended(Why::Stopped { cause: Cause::Requested }, None)),
            (0u64..10).prop_map(|d| Lifecycle::BackingOff {
                end: Ending { code: Some(1), ..Ending::new(Why::OnItsOwn, NOW) },
                until_ms: NOW + d,
                delay_ms: d
            }),
        ]
    }

    fn arb_jobs() -> impl Strategy<Value = BTreeMap<String, Job>> {
        let one = (any::<bool>(), 1u64..4, arb_life(), 0u64..4, 0usize..6, any::<bool>());
        prop::collection::vec(one, 0..8).prop_map(|specs| {
            let names: Vec<String> = (0..specs.len()).map(|i| format!("j{i}")).collect();
            jobs(
                specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (run, generation, life, obs_gen, dep, listen))| {
                        let desired = if run { Desired::Running } else { Desired::Stopped };
                        let mut j = job(&names[i], desired, generation, life, obs_gen.min(generation));
                        if listen {
                            j.spec.listen = vec!["127.0.0.1:8080".into()];
                        }
                        // Dependencies only on earlier jobs: `after` graphs are acyclic.
                        if dep < i {
                            let condition = Condition::ALL[dep % 4];
                            j.spec.after = vec![crate::spec::Dependency::new(names[dep].clone(), condition)];
                        }
                        j
                    })
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn applying_a_plan_leaves_nothing_new_to_do(mut js in arb_jobs()) {
            let first = plan(&js, NOW);
            apply(&mut js, &first, NOW);
            let second = plan(&js, NOW);
            prop_assert!(second.actions.is_empty(), "second plan: {:?}", second.actions);
        }

        #[test]
        fn nothing_starts_before_its_dependencies(js in arb_jobs()) {
            for action in plan(&js, NOW).actions {
                if let Action::Spawn(id) = action {
                    prop_assert_eq!(blocked_by(&js[&id], &js, &[]), None);
                }
            }
        }

        #[test]
        fn plan_is_deterministic(js in arb_jobs()) {
            prop_assert_eq!(plan(&js, NOW), plan(&js, NOW));
        }
    }
}
