//! What went wrong inside the daemon that no request was answered with: failed writes of the
//! state database and transitions the table refused. Never only logged: `daemon status` shows
//! them, and a job whose record could not be written is written again once writing works.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    /// Writes of the state database that failed since the daemon started.
    pub storage_failures: u64,
    /// The last write failed (and nothing has succeeded since): the daemon runs read-only.
    pub storage_failing: bool,
    pub last_storage_error: Option<String>,
    pub refused_transitions: u64,
    pub last_refused_transition: Option<String>,
}

impl Problems {
    /// Each problem in a sentence, for `daemon status`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.storage_failing {
            out.push(format!(
                "the state database cannot be written ({}); jobs keep running, changes are kept in memory \
                 and written once it works again",
                self.last_storage_error.as_deref().unwrap_or("unknown error")
            ));
        } else if self.storage_failures > 0 {
            out.push(format!(
                "{} write(s) of the state database failed earlier (last: {}); everything was written again since",
                self.storage_failures,
                self.last_storage_error.as_deref().unwrap_or("unknown error")
            ));
        }
        if self.refused_transitions > 0 {
            out.push(format!(
                "{} state transition(s) refused as impossible (last: {})",
                self.refused_transitions,
                self.last_refused_transition.as_deref().unwrap_or("")
            ));
        }
        out
    }
}

impl Problems {
    pub fn storage_failed(&mut self, error: &str) {
        crate::warn!("bgrun: cannot write the state database: {error}");
        self.storage_failures += 1;
        self.storage_failing = true;
        self.last_storage_error = Some(error.to_string());
    }

    pub fn storage_ok(&mut self) {
        self.storage_failing = false;
    }

    pub fn transition_refused(&mut self, what: String) {
        crate::warn!("bgrun: refused transition {what}");
        self.refused_transitions += 1;
        self.last_refused_transition = Some(what);
    }
}
