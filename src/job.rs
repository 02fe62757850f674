//! A job as the reconciler holds it: the desired half (spec, run or stop, generation) and the
//! observed half (state, process, exit, counters).

use crate::spec::JobSpec;
use crate::state::JobState;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
}

/// The processes of one run: the job's own and its shim's, each with its start time so a
/// reused pid is never mistaken for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunIds {
    pub pid: i32,
    pub start_time: u64,
    pub shim_pid: i32,
    pub shim_start: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub state: JobState,
    /// The generation of the spec the current or last run was started from (0: never started).
    pub generation: u64,
    pub run: Option<RunIds>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    /// Why the job is in its state, in words.
    pub reason: String,
    pub started_ms: Option<u64>,
    pub ready_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub restart_count: u32,
    pub diff_cursor: u64,
    /// Set once the job has run at all; a first spawn that fails leaves no job behind.
    pub ever_spawned: bool,
    /// Crashes in a row without a stable run between them (drives the backoff).
    #[serde(default)]
    pub crash_streak: u32,
    /// The readiness checks of the current run gave up.
    #[serde(default)]
    pub ready_timed_out: bool,
    /// When a restart by policy is due (unix ms), so a new daemon honours the backoff.
    #[serde(default)]
    pub restart_at_ms: Option<u64>,
    /// Where the current run's output starts in the log.
    #[serde(default)]
    pub log_offset: u64,
    /// Ports allocated for `--allocate-port`, kept across restarts while they stay free.
    #[serde(default)]
    pub allocated_ports: std::collections::BTreeMap<String, u16>,
    /// The job was removed from its file: forget it once it has stopped.
    #[serde(default)]
    pub remove_when_stopped: bool,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            state: JobState::Starting,
            generation: 0,
            run: None,
            exit_code: None,
            exit_signal: None,
            reason: String::new(),
            started_ms: None,
            ready_ms: None,
            ended_ms: None,
            restart_count: 0,
            diff_cursor: 0,
            ever_spawned: false,
            crash_streak: 0,
            ready_timed_out: false,
            restart_at_ms: None,
            log_offset: 0,
            allocated_ports: Default::default(),
            remove_when_stopped: false,
        }
    }
}

/// Why bgrun stops a run. Only `Requested` is a kill; the others end the run as a crash, so a
/// restart policy brings the job back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Requested,
    MaxRuntime(Duration),
    MaxRss {
        rss_mb: u64,
        limit_mb: u64,
    },
    Unhealthy {
        failures: u32,
        last: String,
    },
    /// `up` changed something that shapes the process.
    Replaced,
}

impl Cause {
    pub fn describe(&self) -> String {
        match self {
            Cause::Requested => "killed on request".into(),
            Cause::MaxRuntime(d) => format!("killed: ran longer than --max-runtime {}", humantime::format_duration(*d)),
            Cause::MaxRss { rss_mb, limit_mb } => format!("killed: memory {rss_mb} MB over --max-rss {limit_mb} MB"),
            Cause::Unhealthy { failures, last } => {
                format!("killed: unhealthy ({failures} failed health checks, last: {last})")
            }
            Cause::Replaced => "replaced by a new spec".into(),
        }
    }
}

/// A stop the reconciler has asked a shim for (in memory only: a new daemon simply asks again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    /// When the daemon stops trusting the shim to finish the stop and kills everything itself.
    pub force_at: Instant,
    pub cause: Cause,
    /// How many times the daemon has had to kill the job's processes itself.
    pub forced: u32,
}

/// Moments that matter to the plan, as values (time is data: the plan compares them to `now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timers {
    pub run_started: Option<Instant>,
    pub restart_at: Option<Instant>,
    pub ready_deadline: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub spec: JobSpec,
    pub desired: Desired,
    /// Bumped by every edit of the desired half.
    pub generation: u64,
    pub created_ms: u64,
    /// Grace for the next stop, when a `kill --grace` overrides the spec's.
    pub stop_grace: Option<Duration>,
    pub obs: Observed,
    /// Increments with every launch; events from older launches are ignored.
    pub attempt: u64,
    pub stopping: Option<Stopping>,
    pub timers: Timers,
    /// A probe (memory, health) asked for this run to end.
    pub evict: Option<Cause>,
}

impl Job {
    pub fn display_name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or(&self.id[..8.min(self.id.len())])
    }

    pub fn short_id(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }

    pub fn grace(&self) -> Duration {
        self.stop_grace.unwrap_or(self.spec.grace)
    }

    /// Cancels a restart the policy had scheduled; true if one was pending.
    pub fn cancel_restart(&mut self) -> bool {
        self.obs.restart_at_ms = None;
        self.timers.restart_at.take().is_some()
    }

    /// A fresh start of the current spec asked for on purpose (run again, restart, up): a new
    /// generation, desired running, and no crash history or pending restart.
    pub fn want_new_run(&mut self) {
        self.desired = Desired::Running;
        self.generation += 1;
        self.stop_grace = None;
        self.obs.crash_streak = 0;
        self.cancel_restart();
    }
}

/// A random (version 4) UUID.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most `b.len()` bytes into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Practically unreachable; fall back to time and pid rather than fail a `run`.
        let seed = crate::supervisor::files::unix_ms() as u128 ^ ((std::process::id() as u128) << 64);
        b = seed.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
