//! A job as the reconciler holds it: the desired half (spec, run or stop, generation) and the
//! observed half (its lifecycle and counters).

use crate::spec::JobSpec;
use crate::state::{Ending, JobState, Lifecycle, RunIds, Then, Why};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Observed {
    pub life: Lifecycle,
    /// The generation of the spec the current or last run was started from (0: never started).
    pub generation: u64,
    pub restart_count: u32,
    pub diff_cursor: u64,
    /// The cursors of filtered diffs (`--stream`, `--filter-regex`), one per filter: a filtered
    /// diff never moves `diff_cursor` past lines it hid, yet goes on from where it was.
    #[serde(default)]
    pub filtered_cursors: std::collections::BTreeMap<String, u64>,
    /// Set once the job has run at all; a first spawn that fails leaves no job behind.
    pub ever_spawned: bool,
    /// Crashes in a row without a stable run between them (drives the backoff).
    pub crash_streak: u32,
    /// Where the current run's output starts in the log (a cursor, see `logs::index`).
    #[serde(default, alias = "log_offset")]
    pub log_cursor: u64,
    /// Ports allocated for `--allocate-port`, kept across restarts while they stay free.
    #[serde(default)]
    pub allocated_ports: std::collections::BTreeMap<String, u16>,
    /// The job was removed from its file: forget it once it has stopped.
    #[serde(default)]
    pub remove_when_stopped: bool,
    /// The next time of the job's `cron` schedule is the first after this (unix ms): when the
    /// schedule last fired, or when it was set (None: when the job was created). Kept in the
    /// store, so a time missed while the daemon was down fires once when it is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_from_ms: Option<u64>,
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
    /// The next launch stops any process of the user that holds the job's ports (`--force`),
    /// not only the job's own leftovers. Asked for by one command; never stored.
    pub force_next: bool,
    /// Attempt numbers handed out: the current run's and those of new runs started beside it.
    pub launches: u64,
    /// A start-first replace under way: a new run started beside the current one. Not stored:
    /// a daemon that restarts meanwhile asks the shim for a new run again, which replaces it.
    pub next: Option<NextRun>,
    /// The last start-first replace that did not go through.
    pub next_failed: Option<NextFailed>,
    /// The first process of the run a start-first replace took over from, until it has exited
    /// (an `up` waits for it: when it answers, the old version serves no more).
    pub retiring: Option<crate::supervisor::files::ChildFile>,
}

/// A new run of a job started beside its current one (see [`crate::spec::Update`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NextRun {
    pub attempt: u64,
    /// The generation of the spec it runs.
    pub generation: u64,
    /// Its process and the number its log lines carry, once the shim has started it.
    pub child: Option<(crate::supervisor::files::ChildFile, u8)>,
    pub since_ms: u64,
    /// When it is given up if it is not ready (or not started) by then.
    pub deadline_ms: u64,
    /// Where its output starts in the log.
    pub log_cursor: u64,
    /// Its `--allocate-port` ports.
    pub ports: std::collections::BTreeMap<String, u16>,
}

/// Why a start-first replace did not go through, for the generation it was for.
#[derive(Debug, Clone, PartialEq)]
pub struct NextFailed {
    pub generation: u64,
    pub reason: String,
    /// The shim could not run two runs of the job at once: it is replaced stop-first instead.
    /// Otherwise the new run failed, and the old one goes on until something changes.
    pub stop_first: bool,
}

/// Filtered diffs remembered per job; the oldest filter's cursor goes when one more comes.
const FILTERED_CURSORS: usize = 16;

impl Observed {
    /// Where a diff (plain, or with this filter) goes on from.
    pub fn cursor(&self, filter: Option<&str>) -> u64 {
        match filter {
            None => self.diff_cursor,
            Some(f) => self.filtered_cursors.get(f).copied().unwrap_or(0),
        }
    }

    /// Moves a diff's cursor from `from` to `to`, unless another diff moved it first.
    pub fn move_cursor(&mut self, filter: Option<String>, from: u64, to: u64) -> bool {
        if self.cursor(filter.as_deref()) != from {
            return false;
        }
        match filter {
            None => self.diff_cursor = to,
            Some(f) => {
                if !self.filtered_cursors.contains_key(&f) && self.filtered_cursors.len() >= FILTERED_CURSORS {
                    // Bounded: a client inventing filters cannot grow the job's record.
                    if let Some(oldest) =
                        self.filtered_cursors.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone())
                    {
                        self.filtered_cursors.remove(&oldest);
                    }
                }
                self.filtered_cursors.insert(f, to);
            }
        }
        true
    }
}

impl Job {
    pub fn new(id: String, spec: JobSpec, created_ms: u64) -> Job {
        let mut job = Job {
            id,
            spec,
            desired: Desired::Running,
            generation: 1,
            created_ms,
            stop_grace: None,
            obs: Observed::default(),
            attempt: 0,
            force_next: false,
            launches: 0,
            next: None,
            next_failed: None,
            retiring: None,
        };
        job.force_next = std::mem::take(&mut job.spec.force);
        job
    }

    /// The job's new spec. One that asks for `--force` arms it for the next launch; the spec
    /// keeps no trace of it.
    pub fn set_spec(&mut self, spec: JobSpec) {
        self.spec = spec;
        self.force_next |= std::mem::take(&mut self.spec.force);
    }

    pub fn life(&self) -> &Lifecycle {
        &self.obs.life
    }

    pub fn state(&self) -> JobState {
        self.obs.life.state()
    }

    pub fn display_name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or(self.short_id())
    }

    pub fn short_id(&self) -> &str {
        crate::protocol::short_id(&self.id)
    }

    /// `project/name` for a job of a project, the name (or short id) otherwise.
    pub fn qualified_name(&self) -> String {
        match &self.spec.project {
            Some(p) => format!("{p}/{}", self.display_name()),
            None => self.display_name().to_string(),
        }
    }

    pub fn grace(&self) -> Duration {
        self.stop_grace.unwrap_or(self.spec.grace)
    }

    /// A newer spec than the one of the current or last run is waiting to run.
    pub fn has_new_generation(&self) -> bool {
        self.desired == Desired::Running && self.obs.generation < self.generation
    }

    /// Ended, and nothing will start it again by itself: no restart by policy is due and no
    /// newer spec waits to run. What `wait`, `expect`, `tail --follow` and `clean` look for.
    pub fn is_finished(&self) -> bool {
        self.obs.life.is_over() && !self.has_new_generation()
    }

    /// The job's listening sockets, if it has any: its own, or those all copies of a job with
    /// replicas share.
    pub fn listen(&self) -> Option<crate::supervisor::files::Listen> {
        if self.spec.listen.is_empty() {
            return None;
        }
        let (key, name) = match &self.spec.replica {
            Some(r) => (format!("{}/{}", self.spec.project.as_deref().unwrap_or(""), r.of), r.of.clone()),
            None => (self.id.clone(), self.spec.name.clone().unwrap_or_else(|| "bgrun".into())),
        };
        Some(crate::supervisor::files::Listen { key, name, addresses: self.spec.listen.clone() })
    }

    /// A fresh start of the current spec asked for on purpose (run again, restart, up): a new
    /// generation, desired running, and no crash history or pending restart.
    /// Why the job is where it is, with a start-first replace under way or failed.
    pub fn reason(&self) -> String {
        let mut reason = self.obs.life.reason();
        let extra = match (&self.next, self.replace_failed()) {
            (Some(next), _) => match &next.child {
                Some((child, _)) => format!("replacing: new run pid {} starting beside it", child.pid),
                None => "replacing: new run starting beside it".into(),
            },
            (None, Some(failed)) => format!("not replaced: {failed}"),
            (None, None) => return reason,
        };
        if !reason.is_empty() {
            reason.push_str("; ");
        }
        reason.push_str(&extra);
        reason
    }

    /// Why the current spec's start-first replace failed, while the old run goes on.
    pub fn replace_failed(&self) -> Option<&str> {
        let failed = self.next_failed.as_ref()?;
        (failed.generation == self.generation && !failed.stop_first && self.obs.generation < self.generation)
            .then_some(failed.reason.as_str())
    }

    pub fn want_new_run(&mut self) {
        self.desired = Desired::Running;
        self.generation += 1;
        self.stop_grace = None;
        self.obs.crash_streak = 0;
        if let Lifecycle::BackingOff { end, .. } = &self.obs.life {
            self.obs.life = Lifecycle::Ended { end: end.clone(), then: Then::Stays };
        }
    }
}

impl Observed {
    /// The observed half as stored: today's shape, or the flat one of protocol 1 and 2 daemons,
    /// which is read and converted (a job is never lost to an upgrade).
    pub fn from_stored(json: &str) -> serde_json::Result<Observed> {
        serde_json::from_str(json).or_else(|_| serde_json::from_str::<FlatObserved>(json).map(Observed::from))
    }
}

#[derive(Deserialize)]
struct FlatObserved {
    state: JobState,
    generation: u64,
    run: Option<RunIds>,
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    reason: String,
    started_ms: Option<u64>,
    ready_ms: Option<u64>,
    ended_ms: Option<u64>,
    restart_count: u32,
    diff_cursor: u64,
    ever_spawned: bool,
    #[serde(default)]
    crash_streak: u32,
    #[serde(default)]
    ready_timed_out: bool,
    #[serde(default)]
    restart_at_ms: Option<u64>,
    #[serde(default)]
    log_offset: u64,
    #[serde(default)]
    allocated_ports: std::collections::BTreeMap<String, u16>,
    #[serde(default)]
    remove_when_stopped: bool,
}

impl From<FlatObserved> for Observed {
    fn from(f: FlatObserved) -> Self {
        Observed {
            life: flat_life(&f),
            generation: f.generation,
            restart_count: f.restart_count,
            diff_cursor: f.diff_cursor,
            filtered_cursors: Default::default(),
            ever_spawned: f.ever_spawned,
            crash_streak: f.crash_streak,
            log_cursor: f.log_offset,
            allocated_ports: f.allocated_ports,
            remove_when_stopped: f.remove_when_stopped,
            cron_from_ms: None,
        }
    }
}

/// The lifecycle a flat record describes. Its free-text reason is kept to be shown, not read.
fn flat_life(f: &FlatObserved) -> Lifecycle {
    use crate::state::Checks;
    let since_ms = f.started_ms.unwrap_or(0);
    match (f.state, f.run) {
        (JobState::Starting, shim) => Lifecycle::Starting { shim },
        (JobState::Running, Some(run)) => {
            let checks = if f.ready_timed_out {
                Checks::GaveUp { timeout_ms: 0 }
            } else {
                // The new daemon restarts the checks; their deadline is not known, so they get
                // a fresh one from the spec once they run again.
                Checks::Until { deadline_ms: u64::MAX }
            };
            Lifecycle::Running { run, since_ms, checks, evict: None }
        }
        (JobState::Ready, Some(run)) => Lifecycle::Ready {
            run,
            since_ms,
            ready_ms: f.ready_ms.unwrap_or(since_ms),
            checked: f.reason == "ready",
            evict: None,
        },
        (state, _) => {
            let outcome = if state.is_alive() { JobState::Crashed } else { state };
            let reason = f.reason.split("; restarting").next().unwrap_or_default().to_string();
            let end = Ending {
                why: Why::Recorded { outcome, reason },
                code: f.exit_code,
                signal: f.exit_signal,
                at_ms: f.ended_ms.unwrap_or(0),
                started_ms: f.started_ms,
                ready_ms: f.ready_ms,
                pid: f.run.map(|r| r.pid).filter(|p| *p > 0),
            };
            match f.restart_at_ms {
                Some(until_ms) => {
                    let delay_ms = until_ms.saturating_sub(f.ended_ms.unwrap_or(until_ms));
                    Lifecycle::BackingOff { end, until_ms, delay_ms }
                }
                None => Lifecycle::Ended { end, then: Then::Stays },
            }
        }
    }
}

/// A random (version 4) UUID.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most `b.len()` bytes into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Practically unreachable; fall back to time and pid rather than fail a `run`.
        let seed = crate::clock::unix_ms() as u128 ^ ((std::process::id() as u128) << 64);
        b = seed.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_record_of_an_earlier_daemon_is_read() {
        let flat = r#"{"state":"crashed","generation":2,"run":null,"exit_code":1,"exit_signal":null,
            "reason":"exited with code 1; restarting in 2s","started_ms":5,"ready_ms":null,"ended_ms":9,
            "restart_count":1,"diff_cursor":0,"ever_spawned":true,"crash_streak":1,"restart_at_ms":11}"#;
        let obs = Observed::from_stored(flat).unwrap();
        assert_eq!(obs.generation, 2);
        assert_eq!(obs.life.state(), JobState::Crashed);
        assert!(matches!(obs.life, Lifecycle::BackingOff { until_ms: 11, delay_ms: 2, .. }));
        assert_eq!(obs.life.ending().unwrap().describe(), "exited with code 1");
        let again = Observed::from_stored(&serde_json::to_string(&obs).unwrap()).unwrap();
        assert_eq!(again, obs);
    }
}
