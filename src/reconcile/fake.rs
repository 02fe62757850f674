//! A supervisor that runs nothing: it records what the reconciler asked of it, and the tests
//! play the reports a real one would send.

use crate::state::RunIds;
use crate::supervisor::files::{ChildFile, ExitFile, SpawnFile};
use crate::supervisor::{Probe, Supervisor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Launch { id: String, attempt: u64, argv: Vec<String> },
    Stop { id: String, grace: Duration },
    ForceKill { id: String, kill_shim: bool },
    Probe { id: String, probe: Probe },
    StopProbes { id: String },
    Remove { id: String },
    ReleaseListen { key: String },
    StartNext { id: String, attempt: u64, argv: Vec<String> },
    PromoteNext { id: String, attempt: u64 },
    AbortNext { id: String, attempt: u64 },
    WatchRetiring { id: String, pid: i32 },
}

pub type LaunchHook = Box<dyn FnMut(&str) + Send>;

/// What the fake knows, shared with the test that drives it.
#[derive(Default)]
pub struct World {
    pub calls: Vec<Call>,
    /// Exit files the "shims" left, by job id.
    pub exits: HashMap<String, ExitFile>,
    /// Shims alive, by shim pid.
    pub alive: Vec<i32>,
    /// How new runs started beside a job's run ended, by attempt.
    pub next_exits: HashMap<u64, ExitFile>,
    /// Called at each launch with the job's id, before the "shim" exists.
    pub on_launch: Option<LaunchHook>,
    next_pid: i32,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<World>>);

impl Fake {
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    /// Takes the calls made since the last look.
    pub fn calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.world().calls)
    }

    fn record(&self, call: Call) {
        self.world().calls.push(call);
    }
}

impl Supervisor for Fake {
    fn launch(&mut self, id: &str, attempt: u64, spawn: &SpawnFile) -> Result<RunIds, String> {
        self.record(Call::Launch { id: id.into(), attempt, argv: spawn.argv.clone() });
        let mut w = self.world();
        if let Some(hook) = &mut w.on_launch {
            hook(id);
        }
        w.next_pid += 2;
        let shim_pid = 1000 + w.next_pid;
        w.alive.push(shim_pid);
        w.exits.remove(id);
        Ok(RunIds { shim_pid, shim_start: 1, ..RunIds::default() })
    }

    fn watch(&mut self, _id: &str, _attempt: u64, _run: RunIds) {}

    fn await_child(&mut self, _id: &str, _attempt: u64, _run: RunIds) {}

    fn live_shim(&self, _id: &str) -> Option<RunIds> {
        None
    }

    fn child(&self, _id: &str) -> Option<ChildFile> {
        None
    }

    fn is_alive(&self, run: &RunIds) -> bool {
        self.world().alive.contains(&run.shim_pid)
    }

    fn stop(&mut self, id: &str, _run: &RunIds, grace: Duration) {
        self.record(Call::Stop { id: id.into(), grace });
    }

    fn force_kill(&mut self, id: &str, _run: &RunIds, kill_shim: bool) {
        self.record(Call::ForceKill { id: id.into(), kill_shim });
    }

    fn exit_of(&mut self, id: &str, _run: Option<&RunIds>) -> Option<ExitFile> {
        self.world().exits.get(id).cloned()
    }

    fn probe(&mut self, id: &str, _attempt: u64, _child: &ChildFile, probe: Probe) {
        self.record(Call::Probe { id: id.into(), probe });
    }

    fn stop_probes(&mut self, id: &str) {
        self.record(Call::StopProbes { id: id.into() });
    }

    fn log_end(&self, _id: &str) -> u64 {
        0
    }

    fn free_port(&self, previous: Option<u16>, taken: &dyn Fn(u16) -> bool) -> Option<u16> {
        previous.or_else(|| (20000..21000).find(|p| !taken(*p)))
    }

    fn resize(&mut self, _id: &str, _run: &RunIds, _cols: u16, _rows: u16) {}

    fn remove(&mut self, id: &str) {
        self.record(Call::Remove { id: id.into() });
    }

    fn job_dirs(&self) -> Vec<String> {
        Vec::new()
    }

    fn stop_stray(&mut self, _id: &str) {}

    fn take_freed(&mut self, _id: &str) -> Vec<String> {
        Vec::new()
    }

    fn release_listen(&mut self, key: &str) {
        self.world().calls.push(Call::ReleaseListen { key: key.to_string() });
    }

    fn start_next(&mut self, id: &str, attempt: u64, _run: &RunIds, spawn: &SpawnFile) {
        self.record(Call::StartNext { id: id.into(), attempt, argv: spawn.argv.clone() });
    }

    fn promote_next(&mut self, id: &str, attempt: u64, _run: &RunIds) {
        self.record(Call::PromoteNext { id: id.into(), attempt });
    }

    fn abort_next(&mut self, id: &str, attempt: u64, _run: &RunIds) {
        self.record(Call::AbortNext { id: id.into(), attempt });
    }

    fn next_exit(&self, _id: &str, attempt: u64) -> Option<ExitFile> {
        self.world().next_exits.get(&attempt).cloned()
    }

    fn watch_retiring(&mut self, id: &str, old: &ChildFile) {
        self.record(Call::WatchRetiring { id: id.into(), pid: old.pid });
    }
}
