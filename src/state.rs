//! A job's lifecycle: one enum whose variants carry what each phase needs (the run's processes,
//! since when, until when, how it ended and why), the one table of moves allowed between phases,
//! and the words shown to users, derived from it and never parsed back.
//!
//! Times are unix milliseconds from the reconciler's clock, so a lifecycle survives a daemon
//! restart as it is (a backoff or a stop deadline carries on where it was).

use crate::spec::Condition;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The state names of the CLI contract: what `list`, `status` and `wait` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Not running yet: waiting for dependencies, or being launched.
    Starting,
    /// The process runs; readiness checks have not all passed yet.
    Running,
    /// The process runs and every readiness check passed.
    Ready,
    /// The process exited with status 0 on its own.
    Exited,
    /// The process exited non-zero, by a signal bgrun did not send, or could not be spawned.
    Crashed,
    /// bgrun stopped the process on request (or it never started before a stop).
    Killed,
}

impl JobState {
    pub fn is_alive(self) -> bool {
        matches!(self, JobState::Starting | JobState::Running | JobState::Ready)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Ready => "ready",
            JobState::Exited => "exited",
            JobState::Crashed => "crashed",
            JobState::Killed => "killed",
        }
    }
}

/// The processes of one run: the job's own and its shim's, each with its start time so a
/// reused pid is never mistaken for them. The job's pid is 0 until the shim has reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunIds {
    pub pid: i32,
    pub start_time: u64,
    pub shim_pid: i32,
    pub shim_start: u64,
}

/// Why bgrun stops a run. Only `Requested` and `Replaced` end it as killed; the others end it as
/// a crash, so a restart policy brings the job back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum Cause {
    Requested,
    MaxRuntime {
        limit_ms: u64,
    },
    MaxRss {
        rss_mb: u64,
        limit_mb: u64,
    },
    Unhealthy {
        failures: u32,
        last: String,
    },
    /// `up` (or `restart`) changed something that shapes the process.
    Replaced,
}

impl Cause {
    pub fn describe(&self) -> String {
        match self {
            Cause::Requested => "killed on request".into(),
            Cause::MaxRuntime { limit_ms } => {
                format!("killed: ran longer than --max-runtime {}", humantime::format_duration(ms(*limit_ms)))
            }
            Cause::MaxRss { rss_mb, limit_mb } => format!("killed: memory {rss_mb} MB over --max-rss {limit_mb} MB"),
            Cause::Unhealthy { failures, last } => {
                format!("killed: unhealthy ({failures} failed health checks, last: {last})")
            }
            Cause::Replaced => "replaced by a new spec".into(),
        }
    }

    /// A stop bgrun wanted ends the run as killed; a limit ends it as a crash.
    fn outcome(&self) -> JobState {
        match self {
            Cause::Requested | Cause::Replaced => JobState::Killed,
            _ => JobState::Crashed,
        }
    }
}

/// Which stop ended a job before it ever got a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoppedBy {
    Kill,
    Down,
    Removed,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum Why {
    /// The process ended by itself (its code or signal says how).
    OnItsOwn,
    /// bgrun stopped it.
    Stopped { cause: Cause },
    /// Its shim stopped it for someone else (a signal to the shim from outside bgrun).
    StoppedOutside,
    /// The shim died without a word; every process of the job was stopped.
    SupervisorDied { cause: Option<Cause> },
    /// No process could be started.
    SpawnFailed { error: String },
    /// Stopped before it ever had a process.
    NeverStarted { by: StoppedBy },
    /// Exited with one of its stop exit codes: it stopped itself on purpose.
    StopCode,
    /// Never started: a dependency ended without meeting its condition.
    DependencyFailed { blocked: Blocked },
    /// Recorded by a bgrun before the lifecycle carried its cause: the words it showed.
    Recorded { outcome: JobState, reason: String },
}

/// How a run ended, and what the run was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    #[serde(flatten)]
    pub why: Why,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at_ms: u64,
    pub started_ms: Option<u64>,
    pub ready_ms: Option<u64>,
    /// The pid the run had, shown after it ended.
    #[serde(default)]
    pub pid: Option<i32>,
}

impl Ending {
    pub fn new(why: Why, at_ms: u64) -> Ending {
        Ending { why, code: None, signal: None, at_ms, started_ms: None, ready_ms: None, pid: None }
    }

    pub fn outcome(&self) -> JobState {
        match &self.why {
            Why::OnItsOwn if self.code == Some(0) => JobState::Exited,
            Why::OnItsOwn | Why::SpawnFailed { .. } | Why::DependencyFailed { .. } => JobState::Crashed,
            Why::Stopped { cause } => cause.outcome(),
            Why::StoppedOutside | Why::NeverStarted { .. } => JobState::Killed,
            Why::StopCode => JobState::Exited,
            Why::SupervisorDied { cause } => cause.as_ref().map_or(JobState::Crashed, Cause::outcome),
            Why::Recorded { outcome, .. } => *outcome,
        }
    }

    /// True for an exit with status 0 on its own: what a one-shot dependency waits for.
    pub fn succeeded(&self) -> bool {
        self.outcome() == JobState::Exited
    }

    pub fn describe(&self) -> String {
        let how = || describe_exit(self.code, self.signal);
        match &self.why {
            Why::OnItsOwn => how(),
            Why::StopCode => format!("{} (a stop exit code: not restarted)", how()),
            Why::Stopped { cause } => format!("{} ({})", cause.describe(), how()),
            Why::StoppedOutside => format!("killed ({})", how()),
            Why::SupervisorDied { cause: Some(Cause::Requested) } => {
                "killed on request (its supervisor did not finish the stop and was killed)".into()
            }
            Why::SupervisorDied { cause: Some(Cause::Replaced) } => "replaced by a new spec (supervisor killed)".into(),
            Why::SupervisorDied { .. } => {
                "its supervisor process died unexpectedly; every process of the job was stopped".into()
            }
            Why::SpawnFailed { error } => error.clone(),
            Why::NeverStarted { by: StoppedBy::Kill } => "killed on request before it started".into(),
            Why::NeverStarted { by: StoppedBy::Down } => "stopped by down before it started".into(),
            Why::NeverStarted { by: StoppedBy::Removed } => "removed from the file before it started".into(),
            Why::DependencyFailed { blocked } => blocked.describe(),
            Why::Recorded { reason, .. } => reason.clone(),
        }
    }

    /// How the run ended in a few words: "exit 3", "killed by SIGKILL", "could not start".
    pub fn short(&self) -> String {
        match (&self.why, self.code, self.signal) {
            (Why::SpawnFailed { .. }, ..) => "could not start".into(),
            (Why::DependencyFailed { .. }, ..) => "a dependency failed".into(),
            (Why::NeverStarted { .. }, ..) => "stopped before it started".into(),
            (_, Some(code), _) => format!("exit {code}"),
            (_, None, Some(_)) => describe_exit(None, self.signal),
            _ => self.outcome().as_str().into(),
        }
    }

    /// False for a failure a restart cannot help: nothing is restarted until something changes.
    pub fn restartable(&self) -> bool {
        !matches!(self.why, Why::DependencyFailed { .. } | Why::StopCode)
    }

    /// The event kind recorded for this ending.
    pub fn event_kind(&self) -> &'static str {
        match (&self.why, self.outcome()) {
            (Why::Stopped { cause: Cause::Replaced } | Why::SupervisorDied { cause: Some(Cause::Replaced) }, _) => {
                "replaced"
            }
            (Why::SpawnFailed { .. }, _) => "spawn-failed",
            (_, state) => state.as_str(),
        }
    }
}

/// What a dependency (`after`) is doing that holds a job back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "kebab-case")]
pub enum Holdup {
    NoSuchJob,
    NotReady,
    /// It runs but its readiness checks gave up.
    ReadyTimedOut,
    Restarting,
    /// It is being stopped.
    Stopping,
    /// Its run ended without meeting the condition (`how`: "exit 3", "killed by SIGKILL").
    Failed {
        how: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub on: String,
    #[serde(default)]
    pub condition: Condition,
    #[serde(flatten)]
    pub holdup: Holdup,
}

impl Blocked {
    /// The dependency will not meet the condition unless something changes: the job fails
    /// rather than wait forever.
    pub fn is_failed(&self) -> bool {
        matches!(self.holdup, Holdup::ReadyTimedOut | Holdup::Failed { .. } | Holdup::NoSuchJob)
    }

    pub fn describe(&self) -> String {
        let name = &self.on;
        match &self.holdup {
            Holdup::NoSuchJob => format!("dependency {name}: no such job"),
            Holdup::NotReady => match self.condition {
                Condition::Started => format!("waiting for {name} to start"),
                Condition::Completed => format!("waiting for {name} to complete"),
                Condition::Ready | Condition::ReadyOrEnded => format!("waiting for {name} to be ready"),
            },
            Holdup::ReadyTimedOut => format!("dependency {name} did not become ready in time"),
            Holdup::Restarting => format!("waiting for {name} to restart"),
            Holdup::Stopping => format!("waiting for {name}: it is stopping"),
            Holdup::Failed { how } => format!("dependency {name} failed ({how})"),
        }
    }
}

/// The readiness checks of a running, not yet ready, run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "checks", rename_all = "kebab-case")]
pub enum Checks {
    /// Checking, until this deadline.
    Until { deadline_ms: u64 },
    /// A one-shot: it is ready when it exits 0.
    UntilExit,
    /// They did not pass within `timeout_ms`; the job keeps running, not ready.
    GaveUp { timeout_ms: u64 },
}

/// What follows an ending that brings no restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Then {
    /// Nothing: the policy does not restart it, or it was stopped.
    #[default]
    Stays,
    /// The restart policy gave up after this many crashes in a row.
    GaveUp { crashes: u32 },
    /// A kill came during the restart backoff.
    RestartCancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Lifecycle {
    /// Wants to run and has no process: not launched yet, or held back by a dependency.
    /// `restart` says the launch will be a restart by policy.
    Waiting {
        blocked: Option<Blocked>,
        #[serde(default)]
        restart: bool,
    },
    /// The shim is being launched (its ids are known once the launch returned) and is starting
    /// the job's process.
    Starting { shim: Option<RunIds> },
    /// The job's process runs; its readiness checks have not passed.
    Running {
        run: RunIds,
        since_ms: u64,
        checks: Checks,
        /// A probe (memory, health) asked for this run to end.
        #[serde(default)]
        evict: Option<Cause>,
    },
    /// The job's process runs and is ready.
    Ready {
        run: RunIds,
        since_ms: u64,
        ready_ms: u64,
        /// False when the job has no readiness checks (ready as soon as it runs).
        checked: bool,
        #[serde(default)]
        evict: Option<Cause>,
    },
    /// Asked to stop; at `until_ms` bgrun stops trusting the shim and kills everything itself.
    Stopping {
        run: RunIds,
        since_ms: u64,
        ready_ms: Option<u64>,
        cause: Cause,
        until_ms: u64,
        /// How many times bgrun has had to kill the job's processes itself.
        forced: u32,
    },
    /// Ended; the restart policy brings it back at `until_ms`.
    BackingOff { end: Ending, until_ms: u64, delay_ms: u64 },
    /// Ended, and staying so unless asked to run again.
    Ended {
        end: Ending,
        #[serde(default)]
        then: Then,
    },
}

/// The kinds of lifecycle, for the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Waiting,
    Starting,
    Running,
    Ready,
    Stopping,
    BackingOff,
    Ended,
}

use Phase as P;

/// Every allowed move between phases. Any phase may also be updated in place.
pub const TRANSITIONS: &[(Phase, Phase)] = &[
    // Launched; or, for a job that must run again, ended by a stop before it ever ran.
    (P::Waiting, P::Starting),
    (P::Waiting, P::Ended),
    // The shim reported the process (or could not start it); or a new daemon found no shim.
    (P::Starting, P::Running),
    (P::Starting, P::Ended),
    (P::Starting, P::Waiting),
    (P::Running, P::Ready),
    (P::Running, P::Stopping),
    (P::Running, P::Ended),
    (P::Ready, P::Stopping),
    (P::Ready, P::Ended),
    (P::Stopping, P::Ended),
    // A restart by policy: due (and launched, or held back by a dependency), or cancelled.
    (P::BackingOff, P::Starting),
    (P::BackingOff, P::Waiting),
    (P::BackingOff, P::Ended),
    // Asked to run again; an ending the policy restarts or gives up on.
    (P::Ended, P::Waiting),
    (P::Ended, P::Starting),
    (P::Ended, P::BackingOff),
];

impl Phase {
    pub fn can_become(self, to: Phase) -> bool {
        self == to || TRANSITIONS.contains(&(self, to))
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::Waiting { blocked: None, restart: false }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self {
            Lifecycle::Waiting { .. } => P::Waiting,
            Lifecycle::Starting { .. } => P::Starting,
            Lifecycle::Running { .. } => P::Running,
            Lifecycle::Ready { .. } => P::Ready,
            Lifecycle::Stopping { .. } => P::Stopping,
            Lifecycle::BackingOff { .. } => P::BackingOff,
            Lifecycle::Ended { .. } => P::Ended,
        }
    }

    /// This lifecycle held back by a dependency: waiting, and still a restart if it was one.
    pub fn held_back(&self, blocked: Blocked) -> Lifecycle {
        let restart = matches!(self, Lifecycle::BackingOff { .. } | Lifecycle::Waiting { restart: true, .. });
        Lifecycle::Waiting { blocked: Some(blocked), restart }
    }

    /// The contract's state name.
    pub fn state(&self) -> JobState {
        match self {
            Lifecycle::Waiting { .. } | Lifecycle::Starting { .. } => JobState::Starting,
            Lifecycle::Running { .. } => JobState::Running,
            Lifecycle::Ready { .. } => JobState::Ready,
            Lifecycle::Stopping { ready_ms: None, .. } => JobState::Running,
            Lifecycle::Stopping { .. } => JobState::Ready,
            Lifecycle::BackingOff { end, .. } | Lifecycle::Ended { end, .. } => end.outcome(),
        }
    }

    /// A process (or a shim starting one) exists for this job.
    pub fn has_process(&self) -> bool {
        match self {
            Lifecycle::Starting { shim } => shim.is_some(),
            Lifecycle::Running { .. } | Lifecycle::Ready { .. } | Lifecycle::Stopping { .. } => true,
            _ => false,
        }
    }

    /// The processes of the current run, once known.
    pub fn run(&self) -> Option<RunIds> {
        match self {
            Lifecycle::Starting { shim } => *shim,
            Lifecycle::Running { run, .. } | Lifecycle::Ready { run, .. } | Lifecycle::Stopping { run, .. } => {
                Some(*run)
            }
            _ => None,
        }
    }

    /// The job's own pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.run().map(|r| r.pid).filter(|p| *p > 0)
    }

    /// The pid of the current run, or of the last one once it ended.
    pub fn last_pid(&self) -> Option<i32> {
        self.pid().or_else(|| self.ending().and_then(|e| e.pid))
    }

    pub fn ending(&self) -> Option<&Ending> {
        match self {
            Lifecycle::BackingOff { end, .. } | Lifecycle::Ended { end, .. } => Some(end),
            _ => None,
        }
    }

    /// Ended, with no restart coming by itself.
    pub fn is_over(&self) -> bool {
        matches!(self, Lifecycle::Ended { .. })
    }

    pub fn readiness_gave_up(&self) -> bool {
        matches!(self, Lifecycle::Running { checks: Checks::GaveUp { .. }, .. })
    }

    pub fn started_ms(&self) -> Option<u64> {
        match self {
            Lifecycle::Running { since_ms, .. }
            | Lifecycle::Ready { since_ms, .. }
            | Lifecycle::Stopping { since_ms, .. } => Some(*since_ms),
            _ => self.ending().and_then(|e| e.started_ms),
        }
    }

    pub fn ready_ms(&self) -> Option<u64> {
        match self {
            Lifecycle::Ready { ready_ms, .. } => Some(*ready_ms),
            Lifecycle::Stopping { ready_ms, .. } => *ready_ms,
            _ => self.ending().and_then(|e| e.ready_ms),
        }
    }

    /// Why the job is where it is, in words.
    pub fn reason(&self) -> String {
        match self {
            Lifecycle::Waiting { blocked: Some(b), .. } => b.describe(),
            Lifecycle::Waiting { blocked: None, .. } | Lifecycle::Starting { .. } => "starting".into(),
            Lifecycle::Running { checks: Checks::Until { .. }, .. } => "running".into(),
            Lifecycle::Running { checks: Checks::UntilExit, .. } => "running until it completes".into(),
            Lifecycle::Running { checks: Checks::GaveUp { timeout_ms }, .. } => format!(
                "not ready: readiness checks did not pass within {}",
                humantime::format_duration(ms(*timeout_ms))
            ),
            Lifecycle::Ready { checked: true, .. } => "ready".into(),
            Lifecycle::Ready { checked: false, .. } => "running (no readiness checks)".into(),
            Lifecycle::Stopping { cause, .. } => format!("stopping: {}", cause.describe()),
            Lifecycle::BackingOff { end, delay_ms, .. } => {
                format!("{}; restarting in {}", end.describe(), humantime::format_duration(ms(*delay_ms)))
            }
            Lifecycle::Ended { end, then: Then::Stays } => end.describe(),
            Lifecycle::Ended { end, then: Then::GaveUp { crashes } } => format!(
                "{}; not restarting after {crashes} crashes in a row (`bgrun run --name` starts it again)",
                end.describe()
            ),
            Lifecycle::Ended { end, then: Then::RestartCancelled } => {
                format!("{}; restart cancelled by kill", end.describe())
            }
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map_or_else(|_| format!("signal {s}"), |sig| sig.as_str().to_string());
            format!("killed by {name}")
        }
        (None, None) => "exited".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Phase; 7] = [P::Waiting, P::Starting, P::Running, P::Ready, P::Stopping, P::BackingOff, P::Ended];

    #[test]
    fn table_walk() {
        // Processes are only started from a phase without one, and only a phase with a process
        // stops; an ending is left only to run again (or to wait for that).
        for from in ALL {
            for to in ALL {
                let alive = |p: Phase| matches!(p, P::Running | P::Ready | P::Stopping);
                let allowed = from.can_become(to);
                if from != to && alive(to) {
                    assert!(
                        !allowed || matches!((from, to), (P::Starting, P::Running) | (_, P::Ready) | (_, P::Stopping)),
                        "{from:?} -> {to:?}"
                    );
                }
                if matches!(from, P::Running | P::Ready | P::Stopping) && matches!(to, P::Waiting | P::Starting) {
                    assert!(!allowed, "{from:?} -> {to:?} skips the ending");
                }
            }
        }
        assert!(P::Stopping.can_become(P::Ended));
        assert!(!P::Stopping.can_become(P::Running));
    }

    #[test]
    fn reasons_are_derived() {
        let end = |why, code| Ending { code, ..Ending::new(why, 0) };
        let crashed = end(Why::OnItsOwn, Some(1));
        assert_eq!(crashed.outcome(), JobState::Crashed);
        assert_eq!(
            Lifecycle::BackingOff { end: crashed.clone(), until_ms: 5, delay_ms: 2000 }.reason(),
            "exited with code 1; restarting in 2s"
        );
        let gave_up = Lifecycle::Ended { end: crashed, then: Then::GaveUp { crashes: 10 } };
        assert!(gave_up.reason().contains("not restarting after 10 crashes"));
        let killed = end(Why::Stopped { cause: Cause::Requested }, None);
        assert_eq!(killed.outcome(), JobState::Killed);
        let limit = end(Why::Stopped { cause: Cause::MaxRuntime { limit_ms: 30_000 } }, None);
        assert_eq!(limit.outcome(), JobState::Crashed);
        let how = "exit 3".to_string();
        let blocked = Blocked { on: "db".into(), condition: Condition::Ready, holdup: Holdup::Failed { how } };
        assert!(blocked.is_failed());
        assert_eq!(blocked.describe(), "dependency db failed (exit 3)");
    }

    #[test]
    fn lifecycles_round_trip_through_json() {
        let life = Lifecycle::Stopping {
            run: RunIds { pid: 3, start_time: 4, shim_pid: 1, shim_start: 2 },
            since_ms: 10,
            ready_ms: Some(11),
            cause: Cause::Unhealthy { failures: 3, last: "refused".into() },
            until_ms: 20,
            forced: 1,
        };
        let json = serde_json::to_string(&life).unwrap();
        assert_eq!(serde_json::from_str::<Lifecycle>(&json).unwrap(), life);
        let ended = Lifecycle::Ended {
            end: Ending { code: Some(0), ..Ending::new(Why::OnItsOwn, 9) },
            then: Then::GaveUp { crashes: 2 },
        };
        let json = serde_json::to_string(&ended).unwrap();
        assert_eq!(serde_json::from_str::<Lifecycle>(&json).unwrap(), ended);
    }
}
