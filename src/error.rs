//! One error type for everything a person may read: what went wrong, what kind of failure it is
//! (which decides the CLI's exit code), and optionally a hint on how to fix it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of failure an error is. Each has its own exit code, documented in the README, so a
/// script can tell "no such job" from "the daemon is not answering" without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A job failed, or a condition was not met (wait, expect, up). Exit 1.
    #[default]
    Failed,
    /// The request or a file does not validate; nothing was changed. Exit 2 (as clap's usage errors).
    BadInput,
    /// No such job. Exit 3.
    NotFound,
    /// The request clashes with the current state (an ambiguous name, a job in the way). Exit 4.
    Conflict,
    /// The daemon could not be reached, or did not answer in time. Exit 5.
    Unreachable,
    /// The system refused: a disk, a file, a permission, an unsafe state directory. Exit 6.
    System,
    /// The daemon took the request but did not answer within its deadline (it may be stuck; the
    /// request may or may not have been applied). Exit 7.
    Timeout,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Unreachable => 5,
            ErrorKind::System => 6,
            ErrorKind::Timeout => 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Failed, message: message.into(), hint: None }
    }

    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), hint: None }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::of(ErrorKind::BadInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::of(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::of(ErrorKind::Conflict, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Wraps a failure of the system (I/O, the database) with what we were doing when it
    /// happened, and a hint when the cause is a known OS limit.
    pub fn context(what: impl fmt::Display, err: impl fmt::Display) -> Self {
        let message = format!("{what}: {err}");
        let hint = os_limit_hint(&message);
        Error { kind: ErrorKind::System, message, hint }
    }
}

/// Hints for the OS limits people run into, recognised by the system's own wording.
fn os_limit_hint(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    // inotify reports running out of watches as ENOSPC, the same words as a full disk.
    if lower.contains("inotify") || (lower.contains("watch") && lower.contains("no space left")) {
        Some("the limit on inotify watches was reached: raise fs.inotify.max_user_watches".into())
    } else if lower.contains("no space left")
        || lower.contains("disk is full")
        || lower.contains("database or disk is full")
    {
        Some("the disk is full: free some space; running jobs keep running meanwhile".into())
    } else if lower.contains("too many open files") {
        Some("the limit on open files was reached: raise it with `ulimit -n`, or run fewer jobs".into())
    } else {
        None
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::context("state database", e)
    }
}

/// `bail!("...")` returns early with an [`Error`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::new(format!($($arg)*))) };
}

/// Writes a line to stderr, and never panics: `eprintln!` panics when stderr cannot be written
/// (a full disk under the daemon's log, `2>/dev/full`), and with `panic = "abort"` that would take
/// the daemon and every job's shim down with it.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `print!` to stdout that never panics (a closed pipe or a full disk is not a crash).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = write!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// `println!` to stdout that never panics.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_code() {
        use ErrorKind::*;
        let kinds = [Failed, BadInput, NotFound, Conflict, Unreachable, System, Timeout];
        let codes: std::collections::HashSet<i32> = kinds.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), kinds.len());
        assert!(!codes.contains(&0));
    }

    #[test]
    fn known_os_limits_get_a_hint() {
        let e = Error::context("cannot write", "No space left on device (os error 28)");
        assert!(e.hint.unwrap().contains("disk is full"));
        let e = Error::context("accept", "Too many open files (os error 24)");
        assert!(e.hint.unwrap().contains("ulimit"));
    }
}
