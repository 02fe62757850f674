//! The reconciler driven by hand: a recording fake supervisor, a paused clock moved by the
//! test, and reports played as a real supervisor would send them.

use super::fake::{Call, Fake};
use super::{Edit, Msg, Reconciler};
use crate::clock::PausedClock;
use crate::error::Result;
use crate::job::Job;
use crate::protocol::{JobView, KillTarget};
use crate::spec::{JobSpec, RestartPolicy};
use crate::state::{Checks, JobState, Lifecycle, RunIds, Then};
use crate::store::Store;
use crate::supervisor::Report;
use crate::supervisor::files::{ChildFile, ExitFile};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const T0: u64 = 1_800_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Rig {
    rec: Reconciler,
    fake: Fake,
    clock: PausedClock,
}

fn rig() -> Rig {
    rig_with(Store::in_memory(), Fake::default())
}

fn rig_with(store: Store, fake: Fake) -> Rig {
    let clock = PausedClock::at(T0);
    let parts = Reconciler::load(store, Box::new(fake.clone()), Arc::new(clock.clone())).unwrap();
    Rig { rec: parts.reconciler, fake, clock }
}

fn spec(name: &str) -> JobSpec {
    let mut spec = crate::spec::tests::sample();
    spec.name = Some(name.into());
    spec.cmd = vec!["server".into()];
    spec
}

impl Rig {
    fn edit<T>(&mut self, make: impl FnOnce(oneshot::Sender<T>) -> Edit) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.rec.on_message(Msg::Edit(make(tx)));
        rx
    }

    fn run(&mut self, spec: JobSpec) -> oneshot::Receiver<Result<JobView>> {
        self.edit(|reply| Edit::Run { spec: Box::new(spec), reply })
    }

    /// A run whose answer nobody waits for.
    fn start(&mut self, spec: JobSpec) {
        drop(self.run(spec));
    }

    fn id(&self, name: &str) -> String {
        self.job(name).id.clone()
    }

    /// The job of that name, alone or in project `p`.
    fn job(&self, name: &str) -> &Job {
        self.rec.find(None, name).or_else(|| self.rec.find(Some("p"), name)).unwrap()
    }

    fn report(&mut self, report: Report) {
        self.rec.on_report(report);
    }

    /// The shim of the job's current run reports its process.
    fn spawned(&mut self, name: &str) {
        let (id, attempt) = (self.id(name), self.job(name).attempt);
        let child = ChildFile { pid: 4000 + attempt as i32, start_time: 7 };
        self.report(Report::Spawned { id, attempt, result: Ok(child) });
    }

    /// The job's current run ends: its shim leaves an exit file (or none) and is gone.
    fn exits(&mut self, name: &str, code: Option<i32>) {
        let (id, attempt) = (self.id(name), self.job(name).attempt);
        let run = self.job(name).life().run().unwrap();
        {
            let mut world = self.fake.world();
            world.alive.retain(|p| *p != run.shim_pid);
            if let Some(code) = code {
                let exit = ExitFile { code: Some(code), signal: None, stopped: false, unix_ms: self.clock_ms() };
                world.exits.insert(id.clone(), exit);
            }
        }
        self.report(Report::Exited { id, attempt });
    }

    fn clock_ms(&self) -> u64 {
        use crate::clock::Clock;
        self.clock.now_ms()
    }

    fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.rec.tick();
    }

    fn launches(&self) -> usize {
        self.fake.calls().iter().filter(|c| matches!(c, Call::Launch { .. })).count()
    }
}

#[test]
fn a_run_is_answered_once_its_process_runs() {
    let mut r = rig();
    let mut reply = r.run(spec("web"));
    assert!(matches!(r.fake.calls()[..], [Call::Launch { attempt: 1, .. }]));
    assert!(reply.try_recv().is_err(), "answered before the process ran");
    assert!(matches!(r.job("web").life(), Lifecycle::Starting { shim: Some(_) }));
    r.spawned("web");
    let view = reply.try_recv().unwrap().unwrap();
    assert_eq!(view.state, "ready");
    assert_eq!(view.reason, "running (no readiness checks)");
    assert_eq!(view.pid, Some(4001));
}

#[test]
fn a_crash_restarts_after_a_backoff_that_doubles() {
    let mut r = rig();
    let mut s = spec("worker");
    s.restart = RestartPolicy::OnCrash;
    s.backoff = Duration::from_secs(1);
    r.start(s);
    r.spawned("worker");
    r.fake.calls();
    r.exits("worker", Some(3));
    let life = r.job("worker").life().clone();
    let Lifecycle::BackingOff { until_ms, delay_ms, .. } = life else { panic!("{life:?}") };
    assert!((1000..=1100).contains(&delay_ms), "{delay_ms}");
    assert_eq!(until_ms, T0 + delay_ms);
    assert_eq!(r.job("worker").state(), JobState::Crashed);
    assert!(r.job("worker").life().reason().starts_with("exited with code 3; restarting in 1"));
    r.advance(ms(delay_ms - 1));
    assert_eq!(r.launches(), 0, "restarted before its backoff");
    r.advance(ms(1));
    assert_eq!(r.launches(), 1);
    assert_eq!(r.job("worker").obs.restart_count, 1);
    r.spawned("worker");
    r.exits("worker", Some(3));
    let Lifecycle::BackingOff { delay_ms, .. } = r.job("worker").life().clone() else { panic!() };
    assert!((2000..=2200).contains(&delay_ms), "the second crash in a row doubles: {delay_ms}");
}

#[test]
fn quick_crashes_give_up_but_clean_exits_never_do() {
    let mut r = rig();
    let mut s = spec("flaky");
    s.restart = RestartPolicy::Always;
    s.backoff = Duration::ZERO;
    r.start(s.clone());
    // The default max-restarts (10) restarts, then the next crash is the last.
    for _ in 0..=crate::spec::DEFAULT_MAX_RESTARTS {
        r.spawned("flaky");
        r.exits("flaky", Some(1));
        r.advance(ms(1));
    }
    let life = r.job("flaky").life().clone();
    assert!(matches!(life, Lifecycle::Ended { then: Then::GaveUp { crashes: 11 }, .. }), "{life:?}");
    assert!(life.reason().contains("not restarting after 11 crashes"));

    s.name = Some("tidy".into());
    r.start(s);
    for _ in 0..(2 * crate::spec::DEFAULT_MAX_RESTARTS) {
        r.spawned("tidy");
        r.exits("tidy", Some(0));
        r.advance(ms(1));
    }
    assert_eq!(r.job("tidy").obs.crash_streak, 0);
    assert!(matches!(r.job("tidy").life(), Lifecycle::Starting { .. }), "clean exits keep restarting");
}

#[test]
fn a_stop_escalates_on_timers_of_its_own() {
    let mut r = rig();
    r.start(spec("db"));
    r.spawned("db");
    r.fake.calls();
    let target = KillTarget::Job("db".into());
    let mut reply = r.edit(|reply| Edit::Kill { target, grace: Some(Duration::from_secs(1)), reply });
    assert_eq!(r.fake.calls(), vec![Call::Stop { id: r.id("db"), grace: Duration::from_secs(1) }]);
    assert!(r.job("db").life().reason().starts_with("stopping: killed on request"));
    // Grace plus the margin the shim gets to finish the stop itself.
    r.advance(ms(1999));
    assert!(r.fake.calls().is_empty());
    r.advance(ms(1));
    assert_eq!(r.fake.calls(), vec![Call::ForceKill { id: r.id("db"), kill_shim: false }]);
    // A shim that still has not ended (stopped, say) is killed itself next time.
    r.advance(ms(1000));
    assert_eq!(r.fake.calls(), vec![Call::ForceKill { id: r.id("db"), kill_shim: true }]);
    assert!(reply.try_recv().is_err());
    r.exits("db", None);
    assert_eq!(reply.try_recv().unwrap().unwrap(), vec![r.id("db")]);
    assert_eq!(r.job("db").state(), JobState::Killed);
}

#[test]
fn a_kill_during_the_backoff_cancels_the_restart() {
    let mut r = rig();
    let mut s = spec("loop");
    s.restart = RestartPolicy::OnCrash;
    r.start(s);
    r.spawned("loop");
    r.exits("loop", Some(1));
    r.fake.calls();
    let target = KillTarget::Job("loop".into());
    let mut reply = r.edit(|reply| Edit::Kill { target, grace: None, reply });
    assert_eq!(reply.try_recv().unwrap().unwrap(), vec![r.id("loop")], "answered at once: nothing to stop");
    assert_eq!(r.job("loop").life().reason(), "exited with code 1; restart cancelled by kill");
    r.advance(Duration::from_secs(600));
    assert_eq!(r.launches(), 0);
}

#[test]
fn a_dependent_starts_once_its_dependency_is_ready() {
    let mut r = rig();
    let mut db = spec("db");
    db.ready.log_contains = vec!["accepting connections".into()];
    db.ready.timeout = Duration::from_secs(30);
    r.start(db);
    r.spawned("db");
    let mut app = spec("app");
    app.after = vec![crate::spec::Dependency::new("db", crate::spec::Condition::Ready)];
    r.start(app);
    let calls = r.fake.calls();
    assert!(calls.iter().any(|c| matches!(c, Call::Probe { probe: crate::supervisor::Probe::Readiness { .. }, .. })));
    assert!(!calls.iter().any(|c| matches!(c, Call::Launch { id, .. } if *id == r.id("app"))));
    assert_eq!(r.job("app").life().reason(), "waiting for db to be ready");
    let (id, attempt) = (r.id("db"), r.job("db").attempt);
    r.report(Report::Ready { id, attempt });
    assert_eq!(r.job("db").life().reason(), "ready");
    assert!(r.fake.calls().iter().any(|c| matches!(c, Call::Launch { id, .. } if *id == r.id("app"))));
}

#[test]
fn readiness_gives_up_at_its_deadline_and_wait_answers() {
    let mut r = rig();
    let mut s = spec("slow");
    s.ready.port = Some(1);
    s.ready.timeout = Duration::from_secs(5);
    r.start(s);
    r.spawned("slow");
    let id = r.id("slow");
    let mut waited = r.edit(|reply| Edit::Wait { id, reply });
    r.advance(ms(4999));
    assert!(waited.try_recv().is_err());
    r.advance(ms(1));
    let job = waited.try_recv().unwrap();
    assert!(matches!(job.life(), Lifecycle::Running { checks: Checks::GaveUp { timeout_ms: 5000 }, .. }));
    assert_eq!(job.life().reason(), "not ready: readiness checks did not pass within 5s");
}

#[test]
fn a_shim_that_dies_without_a_word_crashes_the_job() {
    let mut r = rig();
    r.start(spec("lost"));
    r.spawned("lost");
    r.exits("lost", None);
    let job = r.job("lost");
    assert_eq!(job.state(), JobState::Crashed);
    assert!(job.life().reason().contains("supervisor process died unexpectedly"));
}

#[test]
fn reports_about_an_older_run_are_ignored() {
    let mut r = rig();
    let mut s = spec("web");
    s.restart = RestartPolicy::OnCrash;
    s.backoff = Duration::ZERO;
    r.start(s);
    r.spawned("web");
    r.exits("web", Some(1));
    r.advance(ms(1));
    r.spawned("web");
    let id = r.id("web");
    r.report(Report::Exited { id: id.clone(), attempt: 1 });
    r.report(Report::Evict { id, attempt: 1, cause: crate::state::Cause::Replaced });
    assert!(matches!(r.job("web").life(), Lifecycle::Ready { evict: None, .. }));
}

#[test]
fn a_refused_transition_is_counted_and_changes_nothing() {
    let mut r = rig();
    r.start(spec("web"));
    let id = r.id("web");
    let ready = Lifecycle::Ready { run: RunIds::default(), since_ms: 0, ready_ms: 0, checked: false, evict: None };
    let waiting = Lifecycle::Waiting { blocked: None, restart: false };
    r.rec.jobs.get_mut(&id).unwrap().obs.life = waiting;
    assert!(!r.rec.set_life(&id, ready), "a job cannot be ready before it was started");
    assert_eq!(r.rec.problems.refused_transitions, 1);
    assert!(matches!(r.job("web").life(), Lifecycle::Waiting { .. }));
}

#[test]
fn a_run_recorded_but_never_launched_is_launched_by_the_next_daemon() {
    let mut r = rig();
    r.start(spec("web"));
    let id = r.id("web");
    // The daemon died between committing the run and launching its shim.
    r.rec.jobs.get_mut(&id).unwrap().obs.life = Lifecycle::Starting { shim: None };
    r.rec.save(&id, None);
    let store = std::mem::replace(&mut r.rec.store, Store::in_memory());
    let mut next = rig_with(store, Fake::default());
    next.rec.tick();
    assert_eq!(next.launches(), 1, "no shim holds the job's lock: it is launched again");
    assert!(matches!(next.job("web").life(), Lifecycle::Starting { shim: Some(_) }));
}

/// Every run a pass starts is on disk before any shim is launched (another reader of the
/// database, such as the next daemon, finds all of them), and with its shim's pid once they all
/// are: two commits for the pass, however many jobs it starts, not two for each.
#[test]
fn a_pass_commits_its_runs_before_launching_any_shim_and_the_shims_after() {
    let dir = std::env::temp_dir().join(format!("bgrun-reconcile-commits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state.db");
    let starting = |path: &std::path::Path, launched: bool| {
        let (jobs, _) = Store::open(path).unwrap().load().unwrap();
        jobs.iter().filter(|j| matches!(j.obs.life, Lifecycle::Starting { shim } if shim.is_some() == launched)).count()
    };
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fake = Fake::default();
    let (path, log) = (db.clone(), seen.clone());
    fake.world().on_launch = Some(Box::new(move |_| log.lock().unwrap().push(starting(&path, false))));
    let mut r = rig_with(Store::open(&db).unwrap(), fake);
    let jobs: Vec<JobSpec> = (0..5).map(|i| JobSpec { project: Some("p".into()), ..spec(&format!("j{i}")) }).collect();
    drop(r.edit(|reply| Edit::Apply { project: "p".into(), jobs, only: vec![], revive: false, renew: vec![], reply }));
    assert_eq!(*seen.lock().unwrap(), [5, 5, 5, 5, 5], "each launch finds all five runs recorded");
    assert_eq!(starting(&db, true), 5, "and every shim's pid is recorded");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_live_run_is_adopted_and_a_dead_one_recorded() {
    let fake = Fake::default();
    let mut r = rig_with(Store::in_memory(), fake.clone());
    r.start(spec("alive"));
    r.spawned("alive");
    r.start(spec("dead"));
    r.spawned("dead");
    let dead_run = r.job("dead").life().run().unwrap();
    fake.world().alive.retain(|p| *p != dead_run.shim_pid);
    let id = r.id("dead");
    fake.world().exits.insert(id, ExitFile { code: Some(0), signal: None, stopped: false, unix_ms: T0 });
    let store = std::mem::replace(&mut r.rec.store, Store::in_memory());
    let next = rig_with(store, fake);
    assert!(matches!(next.job("alive").life(), Lifecycle::Ready { .. }));
    assert_eq!(next.job("dead").state(), JobState::Exited);
    assert_eq!(next.job("dead").life().reason(), "exited with code 0");
}

#[test]
fn a_new_daemon_keeps_the_readiness_deadline_and_a_given_up_check() {
    let fake = Fake::default();
    let mut r = rig_with(Store::in_memory(), fake.clone());
    let mut slow = spec("slow");
    slow.ready.port = Some(1);
    slow.ready.timeout = Duration::from_secs(5);
    let mut stuck = slow.clone();
    stuck.name = Some("stuck".into());
    r.start(slow);
    r.start(stuck);
    r.spawned("slow");
    r.spawned("stuck");
    r.advance(ms(5000));
    assert!(r.job("stuck").life().readiness_gave_up());
    let deadline = |r: &Rig| match r.job("slow").life() {
        Lifecycle::Running { checks: Checks::Until { deadline_ms }, .. } => *deadline_ms,
        other => panic!("{other:?}"),
    };
    // `slow` started later: give it a deadline after the other's.
    r.rec.jobs.get_mut(&r.id("slow")).unwrap().obs.life = Lifecycle::Running {
        run: r.job("slow").life().run().unwrap(),
        since_ms: T0,
        checks: Checks::Until { deadline_ms: T0 + 9000 },
        evict: None,
    };
    r.rec.save(&r.id("slow"), None);
    let store = std::mem::replace(&mut r.rec.store, Store::in_memory());
    let next = rig_with(store, fake);
    assert!(next.job("stuck").life().readiness_gave_up(), "a new daemon forgot that readiness gave up");
    assert_eq!(deadline(&next), T0 + 9000, "a new daemon restarted the readiness timeout");
}

#[test]
fn an_ended_job_shows_its_last_pid_and_down_does_not_claim_a_kill() {
    let mut r = rig();
    let mut s = spec("loop");
    s.restart = RestartPolicy::OnCrash;
    s.project = Some("p".into());
    r.start(s);
    let id = r.rec.jobs.keys().next().unwrap().clone();
    let attempt = r.rec.jobs[&id].attempt;
    r.report(Report::Spawned { id: id.clone(), attempt, result: Ok(ChildFile { pid: 4321, start_time: 7 }) });
    let run = r.rec.jobs[&id].life().run().unwrap();
    r.fake.world().alive.retain(|p| *p != run.shim_pid);
    r.report(Report::Exited { id: id.clone(), attempt });
    assert!(matches!(r.rec.jobs[&id].life(), Lifecycle::BackingOff { .. }));
    assert_eq!(super::views::job_view(&r.rec.jobs[&id]).pid, Some(4321));
    let mut reply = r.edit(|reply| Edit::Down { project: "p".into(), only: vec![], reply });
    assert_eq!(reply.try_recv().unwrap(), vec![id.clone()]);
    let reason = r.rec.jobs[&id].life().reason();
    assert_eq!(reason, "its supervisor process died unexpectedly; every process of the job was stopped");
}

/// A one-shot run every ten seconds (T0 is on a ten-second boundary).
fn every_ten_seconds_oneshot(name: &str) -> JobSpec {
    let mut s = spec(name);
    s.oneshot = true;
    s.cron = Some("*/10 * * * * *".into());
    s
}

#[test]
fn a_cron_schedule_restarts_a_server_and_runs_a_oneshot_at_most_once_at_a_time() {
    let mut r = rig();
    let mut server = spec("server");
    // T0 is on a ten-second boundary: due at T0 + 10 s, T0 + 20 s…
    server.cron = Some("*/10 * * * * *".into());
    r.start(server);
    r.spawned("server");
    r.fake.calls();
    r.advance(ms(9_999));
    assert!(r.fake.calls().is_empty(), "restarted before its time");
    r.advance(ms(1));
    assert_eq!(r.fake.calls(), vec![Call::Stop { id: r.id("server"), grace: crate::spec::DEFAULT_GRACE }]);
    r.exits("server", None);
    assert_eq!(r.launches(), 1, "the new run starts once the old one is gone");
    r.spawned("server");

    let backup = every_ten_seconds_oneshot("backup");
    r.start(backup);
    r.spawned("backup");
    r.exits("backup", Some(0));
    r.fake.calls();
    r.advance(ms(10_000));
    let launched: Vec<String> = r
        .fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Launch { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert!(launched.contains(&r.id("backup")), "the one-shot runs on its schedule: {launched:?}");
    r.spawned("backup");
    r.fake.calls();
    // Still running when the schedule comes round again: that time is skipped.
    r.advance(ms(10_000));
    assert!(!r.fake.calls().iter().any(|c| matches!(c, Call::Launch { id, .. } if *id == r.id("backup"))));
    assert!(matches!(r.job("backup").life(), Lifecycle::Running { .. } | Lifecycle::Ready { .. }));
}

#[test]
fn times_missed_while_the_daemon_was_down_run_once() {
    let fake = Fake::default();
    let mut r = rig_with(Store::in_memory(), fake.clone());
    let backup = every_ten_seconds_oneshot("backup");
    r.start(backup);
    r.spawned("backup");
    r.exits("backup", Some(0));
    let store = std::mem::replace(&mut r.rec.store, Store::in_memory());
    // Back 35 s later: three times were missed.
    let clock = PausedClock::at(T0 + 35_000);
    let parts = Reconciler::load(store, Box::new(fake.clone()), Arc::new(clock.clone())).unwrap();
    let mut next = Rig { rec: parts.reconciler, fake, clock };
    next.fake.calls();
    next.rec.tick();
    assert_eq!(next.launches(), 1, "one run for all the missed times");
    next.spawned("backup");
    next.exits("backup", Some(0));
    next.advance(ms(4_999));
    assert_eq!(next.launches(), 0, "the next time is the schedule's next after the catch-up run");
    next.advance(ms(1));
    assert_eq!(next.launches(), 1);
}

/// A ready server behind listening sockets, whose readiness is a log line: replaced start-first.
fn served(r: &mut Rig, version: &str) -> JobSpec {
    let mut s = spec("web");
    s.project = Some("p".into());
    s.listen = vec!["127.0.0.1:8080".into()];
    s.ready.log_contains = vec!["serving".into()];
    s.ready.timeout = Duration::from_secs(30);
    s.env.insert("VERSION".into(), version.into());
    s.declared_env.insert("VERSION".into(), version.into());
    let applied = r.edit(|reply| Edit::Apply {
        project: "p".into(),
        jobs: vec![s.clone()],
        only: vec![],
        revive: false,
        renew: vec![],
        reply,
    });
    drop(applied);
    s
}

/// v1 of the server, ready; its pid.
fn ready_v1(r: &mut Rig) -> i32 {
    served(r, "v1");
    r.spawned("web");
    r.report(Report::Ready { id: r.id("web"), attempt: 1 });
    r.fake.calls();
    r.job("web").life().pid().unwrap()
}

fn next_started(r: &mut Rig, attempt: u64, pid: i32) {
    let started = crate::supervisor::files::NextStarted::Ok { pid, start_time: 8, run: 1 };
    r.report(Report::NextSpawned { id: r.id("web"), attempt, started });
}

#[test]
fn start_first_promotes_the_new_run_once_ready_and_waits_for_the_old_to_exit() {
    let mut r = rig();
    let old = ready_v1(&mut r);
    served(&mut r, "v2");
    let id = r.id("web");
    let calls = r.fake.calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::Stop { .. })), "the old run was stopped first: {calls:?}");
    let Some(Call::StartNext { attempt, .. }) = calls.iter().find(|c| matches!(c, Call::StartNext { .. })) else {
        panic!("no new run asked for: {calls:?}")
    };
    let attempt = *attempt;
    assert!(r.job("web").reason().contains("replacing"), "{}", r.job("web").reason());
    next_started(&mut r, attempt, 5000);
    // Its readiness reads only its own lines.
    let probe = r.fake.calls().into_iter().find_map(|c| match c {
        Call::Probe { probe: crate::supervisor::Probe::Readiness { run, .. }, .. } => Some(run),
        _ => None,
    });
    assert_eq!(probe, Some(Some(1)));
    assert_eq!(r.job("web").life().pid(), Some(old), "the old run serves until the new one is ready");
    r.report(Report::Ready { id: id.clone(), attempt });
    let calls = r.fake.calls();
    assert!(calls.contains(&Call::PromoteNext { id: id.clone(), attempt }), "{calls:?}");
    assert!(calls.contains(&Call::WatchRetiring { id: id.clone(), pid: old }), "{calls:?}");
    let job = r.job("web");
    assert_eq!((job.life().pid(), job.state()), (Some(5000), JobState::Ready));
    assert_eq!(job.obs.generation, job.generation, "the new spec runs");
    assert!(job.retiring.is_some(), "an up waits for the old run to exit");
    r.report(Report::Retired { id: id.clone(), pid: old });
    assert!(r.job("web").retiring.is_none());
    // A report about the new run's attempt that comes late changes nothing.
    r.report(Report::Exited { id, attempt });
    assert_eq!(r.job("web").state(), JobState::Ready);
}

#[test]
fn a_new_run_that_exits_or_is_not_ready_in_time_goes_and_the_old_one_stays() {
    let mut r = rig();
    let old = ready_v1(&mut r);
    let id = r.id("web");

    // v2 exits at once.
    served(&mut r, "v2");
    let attempt = r.job("web").next.as_ref().unwrap().attempt;
    next_started(&mut r, attempt, 5000);
    let exit = ExitFile { code: Some(3), signal: None, stopped: false, unix_ms: T0 };
    r.fake.world().next_exits.insert(attempt, exit);
    r.report(Report::Exited { id: id.clone(), attempt });
    assert!(r.fake.calls().contains(&Call::AbortNext { id: id.clone(), attempt }));
    let job = r.job("web");
    assert_eq!((job.life().pid(), job.state()), (Some(old), JobState::Ready));
    let failed = job.replace_failed().unwrap();
    assert!(failed.contains("exited before it was ready (exited with code 3)"), "{failed}");
    r.advance(ms(120_000));
    assert!(r.fake.calls().iter().all(|c| !matches!(c, Call::StartNext { .. } | Call::Stop { .. })), "tried again");

    // v3 never gets ready: given up at the readiness timeout.
    served(&mut r, "v3");
    let attempt = r.job("web").next.as_ref().unwrap().attempt;
    next_started(&mut r, attempt, 5001);
    r.fake.calls();
    r.advance(r.job("web").spec.ready.timeout);
    assert!(r.fake.calls().contains(&Call::AbortNext { id: id.clone(), attempt }));
    assert!(r.job("web").replace_failed().unwrap().contains("not ready within"));
    assert_eq!(r.job("web").life().pid(), Some(old));

    // A supervisor that cannot run two runs at once: replaced stop-first instead.
    served(&mut r, "v4");
    let attempt = r.job("web").next.as_ref().unwrap().attempt;
    let refused = crate::supervisor::files::NextStarted::Refused { refused: "its log settings changed".into() };
    r.report(Report::NextSpawned { id: id.clone(), attempt, started: refused });
    let calls = r.fake.calls();
    assert!(calls.iter().any(|c| matches!(c, Call::Stop { .. })), "{calls:?}");
}

/// `list` is written from the jobs as each pass leaves them: it must read back as each job's
/// view, oldest first, after every change, with the ports found outside the reconciler at the
/// right job.
#[test]
fn a_listing_reads_back_as_the_jobs_views_with_their_ports() {
    let mut r = rig();
    let mut web = spec("web");
    web.cmd = vec!["python3 -m http.server \"8000\"".into()];
    r.start(web);
    r.spawned("web");
    r.clock.advance(ms(5));
    let mut odd = spec("odd");
    odd.cmd = vec!["printf".into(), "a\tb\n\\ \u{e9}".into()];
    odd.workspace = Some("w".into());
    r.start(odd);
    r.clock.advance(ms(5));
    r.start(spec("idle"));
    let (id, attempt) = (r.id("idle"), r.job("idle").attempt);
    r.report(Report::Spawned { id, attempt, result: Ok(ChildFile { pid: 5000, start_time: 7 }) });
    let listed = |r: &mut Rig, workspace: Option<&str>, ports: &crate::reconcile::views::PortsByRoot| {
        let frame = r.rec.jobs.listing(workspace).with_ports(ports);
        match crate::client::decode(&frame) {
            Ok(crate::protocol::Response::Jobs { jobs }) => jobs,
            other => panic!("not a jobs answer: {other:?}"),
        }
    };
    let views = |r: &Rig| -> Vec<JobView> { ["web", "odd", "idle"].map(|n| super::views::job_view(r.job(n))).into() };

    let jobs = listed(&mut r, None, &[(4001, vec![80, 8000])].into_iter().collect());
    let mut expected = views(&r);
    expected[0].ports = vec![80, 8000];
    assert_eq!(jobs, expected);
    assert_eq!(jobs[0].cmd, ["python3", "-m", "http.server", "\"8000\""]);
    assert_eq!(jobs[1].cmd[1], "a\tb\n\\ \u{e9}");
    assert_eq!((jobs[1].pid, jobs[2].pid), (None, Some(5000)));

    // A change shows in the next listing; with no job listening, no ports anywhere.
    r.spawned("odd");
    r.exits("idle", Some(3));
    let jobs = listed(&mut r, None, &Default::default());
    assert_eq!(jobs, views(&r));
    assert_eq!(jobs[1].pid, Some(4001));
    assert_eq!(jobs[2].exit_code, Some(3));
    let only_w = listed(&mut r, Some("w"), &Default::default());
    assert_eq!(only_w, [views(&r).remove(1)]);
}
