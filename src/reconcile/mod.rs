//! The reconciler: the one actor that changes processes. It owns the jobs, receives edits and
//! queries from request handlers and reports from its [`Supervisor`], calls
//! [`crate::plan::plan`] after each, and applies the actions. Handlers never touch a process;
//! they send a typed message and await its typed answer, which for an edit comes once it has
//! been applied (a waiter checked after every pass).

mod actions;
mod adopt;
mod edits;
mod events;
#[cfg(test)]
mod fake;
mod jobs;
mod problems;
mod project;
mod queries;
mod replace;
#[cfg(test)]
mod tests;
pub mod views;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::state::Lifecycle;
use crate::store::Store;
use crate::supervisor::{Report, Supervisor};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

pub use edits::Edit;
pub use problems::Problems;
pub use queries::{DaemonState, Progress, Query};

pub enum Msg {
    Edit(Edit),
    Query(Query),
}

/// Checked after every pass; returns true once it has answered and can be dropped.
type Waiter = Box<dyn FnMut(&mut Reconciler) -> bool + Send>;

pub struct Reconciler {
    store: Store,
    jobs: jobs::Jobs,
    sup: Box<dyn Supervisor>,
    clock: Arc<dyn Clock>,
    waiters: Vec<Waiter>,
    /// When to make a pass even if no message comes (unix ms).
    wake_at: Option<u64>,
    shutting_down: bool,
    /// Bumped after every pass, for those who follow a job until it ends.
    changes: watch::Sender<u64>,
    /// Jobs saved (or forgotten) in the open transaction: if it fails, they are written again.
    in_batch: Vec<String>,
    /// Jobs whose latest state is not in the database because a write failed.
    unsaved: std::collections::BTreeSet<String>,
    problems: Problems,
    /// Runs this round's spawns recorded, launched together at its end.
    prepared: Vec<actions::Prepared>,
}

/// Rounds of plan-and-apply in one pass (a stop, then the wake-up for its deadline).
const MAX_ROUNDS: usize = 4;

/// Reports already waiting that one pass takes in with the report that woke it. A pass plans every
/// job and commits: one per report made a `down` (or an `up`) of N jobs, which sees N exits (or N
/// launches), quadratic. Bounded, so that edits and queries still get their turn in a flood.
const REPORTS_PER_PASS: usize = 64;

/// What request handlers hold: a way to send the reconciler edits and queries.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    changes: watch::Receiver<u64>,
}

fn gone() -> Error {
    Error::new("the daemon is shutting down")
}

impl Handle {
    /// Changes whenever the reconciler has made a pass.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Sends an edit and waits for its answer (which comes once the edit is applied).
    pub async fn edit<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Edit) -> Result<T> {
        self.ask(|reply| Msg::Edit(make(reply))).await
    }

    /// Asks a question about the current state.
    pub async fn query<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T> {
        self.ask(|reply| Msg::Query(make(reply))).await
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// A snapshot of the job `key` names (id, name, project/name or id prefix).
    pub async fn job(&self, key: String) -> Result<Job> {
        self.query(|reply| Query::Job { key, reply }).await?
    }

    /// A snapshot of the job with this id, if it still exists.
    pub async fn job_by_id(&self, id: &str) -> Result<Option<Job>> {
        let ids = vec![id.to_string()];
        Ok(self.query(|reply| Query::ByIds { ids, reply }).await?.pop().flatten())
    }

    /// Where the job with this id stands, if it still exists: what a loop that follows a job's
    /// output asks each time it wakes.
    pub async fn progress(&self, id: &str) -> Result<Option<Progress>> {
        let ids = vec![id.to_string()];
        Ok(self.query(|reply| Query::Progress { ids, reply }).await?.pop().flatten())
    }
}

/// How the daemon wires a reconciler: its supervisor reports into `reports`.
pub struct Parts {
    pub reconciler: Reconciler,
    pub handle: Handle,
    pub inbox: mpsc::UnboundedReceiver<Msg>,
}

impl Reconciler {
    /// Loads the stored jobs and re-adopts the ones still running.
    pub fn load(store: Store, sup: Box<dyn Supervisor>, clock: Arc<dyn Clock>) -> Result<Parts> {
        let (tx, inbox) = mpsc::unbounded_channel();
        let (changes, changes_rx) = watch::channel(0);
        let mut rec = Reconciler {
            store,
            jobs: jobs::Jobs::default(),
            sup,
            clock,
            waiters: Vec::new(),
            wake_at: None,
            shutting_down: false,
            changes,
            in_batch: Vec::new(),
            unsaved: Default::default(),
            problems: Problems::default(),
            prepared: Vec::new(),
        };
        rec.adopt_all()?;
        Ok(Parts { reconciler: rec, handle: Handle { tx, changes: changes_rx }, inbox })
    }

    pub async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Msg>, mut reports: mpsc::UnboundedReceiver<Report>) {
        self.in_one_transaction(|_| {});
        while !self.shutting_down {
            let sleep = self.wake_at.map(|at| std::time::Duration::from_millis(at.saturating_sub(self.now())));
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(msg) => self.on_message(msg),
                    None => break,
                },
                Some(report) = reports.recv() => self.on_reports(report, &mut reports),
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => self.tick(),
            }
        }
    }

    pub fn on_message(&mut self, msg: Msg) {
        match msg {
            Msg::Query(query) => self.answer(query),
            Msg::Edit(edit) => self.in_one_transaction(|r| r.on_edit(edit)),
        }
    }

    pub fn on_report(&mut self, report: Report) {
        self.in_one_transaction(|r| r.on_event(report));
    }

    /// `first`, and the reports that came with it, in one transaction and one pass (the plan is
    /// made from scratch, so it asks the same of several events applied together as of each).
    fn on_reports(&mut self, first: Report, more: &mut mpsc::UnboundedReceiver<Report>) {
        self.in_one_transaction(|r| {
            r.on_event(first);
            for _ in 1..REPORTS_PER_PASS {
                let Ok(report) = more.try_recv() else { break };
                r.on_event(report);
            }
        });
    }

    /// A pass with nothing new but the time.
    pub fn tick(&mut self) {
        self.in_one_transaction(|_| {});
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Applies `change` and then a pass, writing everything they save as one transaction.
    fn in_one_transaction(&mut self, change: impl FnOnce(&mut Self)) {
        let batch = self.store.begin_batch();
        change(self);
        self.pass();
        // What an earlier failed write lost is written again with this one.
        for id in std::mem::take(&mut self.unsaved) {
            self.persist(&id);
        }
        let committed = batch.and_then(|()| self.store.end_batch());
        self.committed(committed);
    }

    /// Takes note of whether the open transaction reached the disk.
    fn committed(&mut self, result: Result<()>) {
        match result {
            Ok(()) => {
                self.in_batch.clear();
                self.problems.storage_ok();
            }
            Err(e) => {
                self.problems.storage_failed(&e.message);
                self.unsaved.extend(self.in_batch.drain(..));
            }
        }
    }

    /// Writes what is known of a job now: its row, or its removal if it was forgotten.
    fn persist(&mut self, id: &str) {
        let result = match self.jobs.get(id) {
            Some(job) => self.store.save(job, None),
            None => self.store.delete(id),
        };
        self.note_write(id, result);
    }

    fn note_write(&mut self, id: &str, result: Result<()>) {
        match result {
            Ok(()) => self.in_batch.push(id.to_string()),
            Err(e) => {
                self.problems.storage_failed(&e.message);
                self.unsaved.insert(id.to_string());
            }
        }
    }

    /// One level-triggered pass: plan from scratch, apply, then answer whoever waits.
    fn pass(&mut self) {
        let now = self.now();
        let mut plan = crate::plan::plan(&self.jobs, now);
        // Applying actions sets new deadlines (a stop's SIGKILL fallback): plan again until
        // nothing is left to do, so the wake-up for them is known. Applying a plan and planning
        // again asks for nothing new, so this ends after a round or two.
        for _ in 0..MAX_ROUNDS {
            if plan.actions.is_empty() {
                break;
            }
            for action in std::mem::take(&mut plan.actions) {
                self.apply(action);
            }
            self.launch_prepared();
            plan = crate::plan::plan(&self.jobs, now);
        }
        self.wake_at = plan.wake_at;
        let mut waiters = std::mem::take(&mut self.waiters);
        waiters.retain_mut(|w| !w(self));
        waiters.append(&mut self.waiters);
        self.waiters = waiters;
        // What `list` shows is written now, while the jobs this pass changed are fresh in memory.
        self.jobs.relist();
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn wait_for(&mut self, waiter: Waiter) {
        self.waiters.push(waiter);
    }

    /// Sends `answer` once every one of `pending` is `over`. One once over stays over: it is
    /// dropped, and a pass looks no further than the first one still going (not at every one,
    /// after every event: that made a `down` of many jobs quadratic).
    fn answer_when_over<T: Send + 'static, R: Send + 'static>(
        &mut self,
        mut pending: Vec<T>,
        over: fn(&Reconciler, &T) -> bool,
        reply: oneshot::Sender<R>,
        answer: R,
    ) {
        let mut reply = Some((reply, answer));
        self.wait_for(Box::new(move |rec: &mut Reconciler| {
            while pending.last().is_some_and(|item| over(rec, item)) {
                pending.pop();
            }
            let done = pending.is_empty();
            if done && let Some((r, answer)) = reply.take() {
                let _ = r.send(answer);
            }
            done
        }));
    }

    /// Persists a job with an optional event. A failing write is counted in the daemon's problems
    /// and the in-memory state carries on: the job is written again with the next transaction.
    fn save(&mut self, id: &str, event: Option<(&str, &str)>) {
        if let Some(job) = self.jobs.get(id) {
            let result = self.store.save(job, event);
            self.note_write(id, result);
        }
    }

    /// Makes the open transaction durable now (before a process is started that a dying daemon
    /// must not lose). Fails when the database cannot be written.
    fn checkpoint(&mut self) -> Result<()> {
        let result = self.store.checkpoint();
        self.committed(result.clone());
        result
    }

    /// Moves a job to a new lifecycle through the transition table. A move the table does not
    /// allow is a bug in the caller: it is refused and counted in the daemon's problems rather
    /// than taking the daemon down.
    fn set_life(&mut self, id: &str, life: Lifecycle) -> bool {
        let Some(job) = self.jobs.get_mut(id) else { return false };
        let (from, to) = (job.obs.life.phase(), life.phase());
        if !from.can_become(to) {
            self.problems.transition_refused(format!("{from:?} -> {to:?} for job {id}"));
            return false;
        }
        job.obs.life = life;
        true
    }

    /// Finds a job by full id, `project/name`, name, or unique id prefix of at least 4
    /// characters. A name that two projects use is an error, never a guess.
    fn resolve(&self, key: &str) -> Result<&Job> {
        if let Some(job) = self.jobs.get(key) {
            return Ok(job);
        }
        if let Some((project, name)) = key.split_once('/')
            && let Some(job) = self.find(Some(project), name)
        {
            return Ok(job);
        }
        let named: Vec<&Job> = self.jobs.values().filter(|j| j.spec.name.as_deref() == Some(key)).collect();
        match named.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                let full: Vec<String> = many.iter().map(|j| j.qualified_name()).collect();
                return Err(Error::conflict(format!("{key:?} names {} jobs: {}", many.len(), full.join(", ")))
                    .with_hint("say which one as project/name"));
            }
        }
        let copies = self.copies_of(key);
        if let Some(first) = copies.first() {
            let names: Vec<String> = copies.iter().map(|j| j.qualified_name()).collect();
            let one = first.spec.name.clone().unwrap_or_default();
            return Err(Error::conflict(format!("{key:?} is {} replicas: {}", copies.len(), names.join(", ")))
                .with_hint(format!("name one, such as {one} (`bgrun kill {key}` stops them all)")));
        }
        if key.len() >= 4 {
            let matches: Vec<&Job> = self.jobs.values().filter(|j| j.id.starts_with(key)).collect();
            match matches.as_slice() {
                [one] => return Ok(one),
                [] => {}
                many => {
                    let ids: Vec<&str> = many.iter().map(|j| j.short_id()).collect();
                    return Err(Error::conflict(format!("{key:?} matches {} jobs: {}", many.len(), ids.join(", ")))
                        .with_hint("give more characters of the id, or the job's name"));
                }
            }
        }
        Err(Error::not_found(format!("no job named or with id {key:?}")).with_hint("`bgrun list` shows every job"))
    }

    /// The ids of the job `key` names, or of every copy of a job with replicas it names.
    fn resolve_all(&self, key: &str) -> Result<Vec<String>> {
        let copies = self.copies_of(key);
        if copies.is_empty() {
            return Ok(vec![self.resolve(key)?.id.clone()]);
        }
        Ok(copies.iter().map(|j| j.id.clone()).collect())
    }

    /// The copies of the job with replicas named `name` or `project/name` (of one project only:
    /// two projects' copies are no more one job than two projects' jobs of one name).
    fn copies_of(&self, key: &str) -> Vec<&Job> {
        let (project, name) = match key.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key),
        };
        let mut copies: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| j.spec.replica.as_ref().is_some_and(|r| r.of == name))
            .filter(|j| project.is_none_or(|p| j.spec.project.as_deref() == Some(p)))
            .collect();
        if copies.iter().any(|j| j.spec.project != copies[0].spec.project) {
            return vec![];
        }
        copies.sort_by_key(|j| j.spec.replica.as_ref().map(|r| r.index));
        copies
    }

    fn find(&self, project: Option<&str>, name: &str) -> Option<&Job> {
        self.jobs.values().find(|j| j.spec.project.as_deref() == project && j.spec.name.as_deref() == Some(name))
    }
}
