//! Real processes, behind the [`Supervisor`] trait the reconciler drives. The daemon side
//! launches shims, watches them exit, signals them and probes their jobs ([`process`]); the shim
//! side ([`shim`]) runs inside each job's own supervisor process.

pub mod container;
pub mod files;
mod free_ports;
mod handoff;
pub mod launch;
mod live_screen;
mod mirror;
pub mod probes;
pub mod process;
pub mod procfs;
pub mod shim;
pub mod sockets;

use crate::spec::{Health, Readiness};
use crate::state::{Cause, RunIds};
use files::{ChildFile, ExitFile, NextStarted, SpawnFile};
use std::path::PathBuf;
use std::time::Duration;

/// What a supervisor reports back, later, about a run it launched, watches or probes. Each names
/// the launch (`attempt`) it is about, so a report about an older run is ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The shim started the job's process, or could not.
    Spawned { id: String, attempt: u64, result: Result<ChildFile, String> },
    /// Every readiness check passed.
    Ready { id: String, attempt: u64 },
    /// A probe (memory, health) wants the run to end.
    Evict { id: String, attempt: u64, cause: Cause },
    /// The shim is gone: the run has ended.
    Exited { id: String, attempt: u64 },
    /// A daemonizing job's first process exited and the shim follows the one it left behind.
    MainChanged { id: String, attempt: u64, child: ChildFile },
    /// The shim started a new run beside the job's current one (or could not, or refused).
    /// Its process's end is reported as `Exited` with the same attempt.
    NextSpawned { id: String, attempt: u64, started: NextStarted },
    /// The first process of a run replaced start-first has exited.
    Retired { id: String, pid: i32 },
}

/// A check run beside a job for one run, reporting back when it has something to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Reports Ready once every check passes; log checks read from `log_cursor`.
    /// `run`: only that run's output counts (a new run started beside the current one).
    Readiness { ready: Readiness, at: ProbeContext, log_cursor: u64, run: Option<u8> },
    /// Reports Evict once the job is unhealthy.
    Health { health: Health, at: ProbeContext },
    /// Reports Evict once the job's memory goes over the limit.
    Memory { limit_mb: u64 },
    /// Reports MainChanged once the shim names another main process than the probe's.
    MainProcess,
}

/// Where a probe's files and commands run: the job's working directory and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeContext {
    pub cwd: PathBuf,
    pub env: std::collections::BTreeMap<String, String>,
}

/// Everything the reconciler does to processes goes through here, so its tests use a recording
/// fake. Methods return at once: anything slow (a handshake, a /proc scan, a probe) happens
/// elsewhere and comes back as a [`Report`].
pub trait Supervisor: Send {
    /// Launches a shim for a run of job `id`; returns the shim's ids. The job's process is
    /// reported as `Spawned`, the shim's end as `Exited`.
    fn launch(&mut self, id: &str, attempt: u64, spawn: &SpawnFile) -> Result<RunIds, String>;
    /// Reports the end of a shim this supervisor did not launch (one a new daemon adopts).
    fn watch(&mut self, id: &str, attempt: u64, run: RunIds);
    /// Reports `Spawned` once an adopted shim that was still starting its job has started it.
    fn await_child(&mut self, id: &str, attempt: u64, run: RunIds);
    /// The shim of `id` that holds the job's lock, if one is alive.
    fn live_shim(&self, id: &str) -> Option<RunIds>;
    /// The job's process as its shim recorded it.
    fn child(&self, id: &str) -> Option<ChildFile>;
    /// True while the run's shim is the process it was (pid and start time).
    fn is_alive(&self, run: &RunIds) -> bool;
    /// Asks the shim to stop the job: SIGTERM to its processes, SIGKILL after `grace`.
    fn stop(&mut self, id: &str, run: &RunIds, grace: Duration);
    /// SIGKILL to every process of the job, found without the shim's help; the shim too when
    /// `kill_shim`.
    fn force_kill(&mut self, id: &str, run: &RunIds, kill_shim: bool);
    /// How the run ended, from the shim's exit file. None when the shim died without one: then
    /// every process of the job is killed, so none runs unseen.
    fn exit_of(&mut self, id: &str, run: Option<&RunIds>) -> Option<ExitFile>;
    /// Starts a probe for the run `attempt` of job `id`, whose process is `child`.
    fn probe(&mut self, id: &str, attempt: u64, child: &ChildFile, probe: Probe);
    /// Stops every probe of job `id`.
    fn stop_probes(&mut self, id: &str);
    /// The size of the job's log, where a new run's output will start.
    fn log_end(&self, id: &str) -> u64;
    /// A free TCP port: `previous` while it is still free, else any other not in `taken`.
    fn free_port(&self, previous: Option<u16>, taken: &dyn Fn(u16) -> bool) -> Option<u16>;
    /// Resizes a PTY job's terminal.
    fn resize(&mut self, id: &str, run: &RunIds, cols: u16, rows: u16);
    /// Removes everything of job `id` from the disk.
    fn remove(&mut self, id: &str);
    /// Jobs that have a directory on disk, known or not.
    fn job_dirs(&self) -> Vec<String>;
    /// A job directory nobody knows: its shim (if alive) is asked to stop, or the directory goes.
    fn stop_stray(&mut self, id: &str);
    /// Closes the listening sockets held for `key` (see [`files::Listen`]): no job that uses
    /// them will run again.
    fn release_listen(&mut self, key: &str);
    /// What the shim of the job's new run stopped to free its ports (once: it is forgotten).
    fn take_freed(&mut self, id: &str) -> Vec<String>;
    /// Asks the shim of the job's run `run` to start a new run from `spawn` beside it (a
    /// start-first replace), as attempt `attempt`: reported as `NextSpawned`, then `Exited` if its
    /// process ends before it is promoted.
    fn start_next(&mut self, id: &str, attempt: u64, run: &RunIds, spawn: &SpawnFile);
    /// The new run becomes the job's run; the shim stops the old one as its spec says.
    fn promote_next(&mut self, id: &str, attempt: u64, run: &RunIds);
    /// The new run is stopped; the job's run goes on.
    fn abort_next(&mut self, id: &str, attempt: u64, run: &RunIds);
    /// How new run `attempt` ended, from the shim's file.
    fn next_exit(&self, id: &str, attempt: u64) -> Option<ExitFile>;
    /// Reports `Retired` once `old`, the first process of a run replaced start-first, has exited.
    fn watch_retiring(&mut self, id: &str, old: &ChildFile);
}
