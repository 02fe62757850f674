//! The reconciler: the one actor that changes processes. It owns the jobs, receives edits from
//! request handlers and events from the supervisor, calls [`crate::plan::plan`] after each, and
//! applies the actions. Handlers never touch a process; they send an edit and await its answer,
//! which comes once the edit is applied (a waiter checked after every pass).

mod actions;
mod adopt;
mod edits;
mod events;
pub mod problems;
pub mod project;
pub mod views;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::job::Job;
use crate::logs::watch::LogWatch;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

pub use edits::Edit;
pub use events::Event;

pub enum Msg {
    Edit(Edit),
    /// Runs a read-only closure against the current state (list, status, resolve...).
    Read(Box<dyn FnOnce(&Reconciler) + Send>),
    Event(Event),
}

/// Checked after every pass; returns true once it has answered and can be dropped.
type Waiter = Box<dyn FnMut(&mut Reconciler) -> bool + Send>;

pub struct Reconciler {
    pub home: Home,
    pub store: Store,
    pub jobs: BTreeMap<String, Job>,
    pub started: Instant,
    tx: mpsc::UnboundedSender<Msg>,
    waiters: Vec<Waiter>,
    wake_at: Option<Instant>,
    shutting_down: bool,
    /// Bumped after every pass, for those who follow a job until it ends.
    changes: watch::Sender<u64>,
    pub logs: Arc<LogWatch>,
    /// Built on first use: an idle daemon loads no TLS roots.
    http: OnceLock<reqwest::Client>,
    /// The probe tasks (readiness, health, memory) of each job's current run, to stop them when
    /// the run ends or its settings change.
    probes: std::collections::HashMap<String, Vec<tokio::task::AbortHandle>>,
    /// Jobs saved (or forgotten) in the open transaction: if it fails, they are written again.
    in_batch: Vec<String>,
    /// Jobs whose latest state is not in the database because a write failed.
    unsaved: std::collections::BTreeSet<String>,
}

/// Rounds of plan-and-apply in one pass (a stop, then the wake-up for its deadline).
const MAX_ROUNDS: usize = 4;

/// What request handlers hold: a way to send the reconciler edits and reads.
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

    pub async fn edit<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Edit) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Edit(make(tx))).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    pub async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Reconciler) -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let msg = Msg::Read(Box::new(move |r| {
            let _ = tx.send(f(r));
        }));
        self.tx.send(msg).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

impl Reconciler {
    /// Loads the stored jobs and re-adopts the ones still running.
    pub fn new(
        home: Home,
        store: Store,
        logs: Arc<LogWatch>,
    ) -> Result<(Reconciler, Handle, mpsc::UnboundedReceiver<Msg>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (changes, changes_rx) = watch::channel(0);
        let mut rec = Reconciler {
            home,
            store,
            jobs: BTreeMap::new(),
            started: Instant::now(),
            tx: tx.clone(),
            waiters: Vec::new(),
            wake_at: None,
            shutting_down: false,
            changes,
            logs,
            http: OnceLock::new(),
            probes: Default::default(),
            in_batch: Vec::new(),
            unsaved: Default::default(),
        };
        rec.adopt_all()?;
        Ok((rec, Handle { tx, changes: changes_rx }, rx))
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        self.in_one_transaction(|_| {});
        while !self.shutting_down {
            let msg = match self.wake_at {
                Some(at) => tokio::select! {
                    msg = rx.recv() => msg,
                    _ = tokio::time::sleep_until(at.into()) => {
                        self.in_one_transaction(|_| {});
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            match msg {
                None => break,
                Some(Msg::Read(f)) => f(&self),
                Some(Msg::Edit(edit)) => self.in_one_transaction(|r| r.on_edit(edit)),
                Some(Msg::Event(event)) => self.in_one_transaction(|r| r.on_event(event)),
            }
        }
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
                problems::storage_ok();
            }
            Err(e) => {
                problems::storage_failed(&e.message);
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
                problems::storage_failed(&e.message);
                self.unsaved.insert(id.to_string());
            }
        }
    }

    /// One level-triggered pass: plan from scratch, apply, then answer whoever waits.
    fn pass(&mut self) {
        let now = Instant::now();
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
            plan = crate::plan::plan(&self.jobs, now);
        }
        self.wake_at = plan.wake_at;
        let mut waiters = std::mem::take(&mut self.waiters);
        waiters.retain_mut(|w| !w(self));
        waiters.append(&mut self.waiters);
        self.waiters = waiters;
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn http(&self) -> reqwest::Client {
        self.http.get_or_init(crate::supervisor::probes::http_client).clone()
    }

    fn wait_for(&mut self, waiter: Waiter) {
        self.waiters.push(waiter);
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

    /// Finds a job by full id, `project/name`, name, or unique id prefix of at least 4
    /// characters. A name that two projects use is an error, never a guess.
    pub fn resolve(&self, key: &str) -> Result<&Job> {
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
                let full: Vec<String> = many.iter().map(|j| views::qualified_name(j)).collect();
                return Err(Error::conflict(format!("{key:?} names {} jobs: {}", many.len(), full.join(", ")))
                    .with_hint("say which one as project/name"));
            }
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
}
