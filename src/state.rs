//! Job states and the one table of transitions allowed between them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// The supervisor is launching the process.
    Starting,
    /// The process runs; readiness checks have not all passed yet.
    Running,
    /// The process runs and every readiness check passed.
    Ready,
    /// The process exited with status 0 on its own.
    Exited,
    /// The process exited non-zero, by a signal bgrun did not send, or could not be spawned.
    Crashed,
    /// bgrun stopped the process on request (or for a limit).
    Killed,
}

use JobState::*;

/// Every allowed `(from, to)` pair. A new run of a finished job starts again at Starting.
pub const TRANSITIONS: &[(JobState, JobState)] = &[
    (Starting, Running),
    (Starting, Exited),
    (Starting, Crashed),
    (Starting, Killed),
    (Running, Ready),
    (Running, Exited),
    (Running, Crashed),
    (Running, Killed),
    (Ready, Exited),
    (Ready, Crashed),
    (Ready, Killed),
    (Exited, Starting),
    (Crashed, Starting),
    (Killed, Starting),
];

impl JobState {
    pub const ALL: [JobState; 6] = [Starting, Running, Ready, Exited, Crashed, Killed];

    pub fn is_alive(self) -> bool {
        matches!(self, Starting | Running | Ready)
    }

    pub fn is_terminal(self) -> bool {
        !self.is_alive()
    }

    pub fn can_become(self, to: JobState) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Starting => "starting",
            Running => "running",
            Ready => "ready",
            Exited => "exited",
            Crashed => "crashed",
            Killed => "killed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_walk() {
        // Alive states only move forward or end; terminal states only restart.
        for from in JobState::ALL {
            for to in JobState::ALL {
                let allowed = from.can_become(to);
                let expected = match (from, to) {
                    (Starting, Running) => true,
                    (Running, Ready) => true,
                    (f, t) if f.is_alive() && t.is_terminal() => true,
                    (f, Starting) if f.is_terminal() => true,
                    _ => false,
                };
                assert_eq!(allowed, expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for st in JobState::ALL {
            assert_eq!(JobState::parse(st.as_str()), Some(st));
        }
    }
}
