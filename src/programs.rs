//! bgrun's programs, which find each other beside their own binary (`cargo install --path .`
//! installs them into one directory). Each links only what it runs: the daemon carries no CLI,
//! the shim no async runtime, and git lives in `bgrun-deploy` alone.

use crate::error::{Error, ErrorKind};
use std::path::PathBuf;

/// The daemon (`bgrun-daemon`): jobs, store, probes; no CLI.
pub const DAEMON: &str = "bgrun-daemon";
/// Each job's supervisor.
pub const SHIM: &str = "bgrun-shim";
/// `bgrun deploy` and a job's `fetch`, with libgit2.
pub const DEPLOY: &str = "bgrun-deploy";
/// The web dashboard and HTTP API.
pub const DASHBOARD: &str = "bgrun-dashboard";

/// The path of the program `name` beside the running one.
pub fn beside(name: &str) -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// Runs the program `name` from beside this one in this process's place, with these arguments;
/// returns only if it could not be run.
pub fn exec_instead(name: &str, args: impl IntoIterator<Item = std::ffi::OsString>) -> Error {
    use std::os::unix::process::CommandExt;
    let error = match beside(name) {
        Ok(path) => std::process::Command::new(&path).args(args).exec(),
        Err(e) => e,
    };
    Error::of(ErrorKind::System, format!("cannot run {name}: {error}")).with_hint(install_hint(name))
}

/// What to do when the program `name` is missing.
pub fn install_hint(name: &str) -> String {
    format!("install bgrun with `cargo install --path .`, which installs {name} beside it")
}

/// What Rust's runtime set-up does that a program entering at C's `main` still needs (the shim
/// and the daemon do, skipping the rest: reading `/proc/self/maps` for the main thread's stack,
/// with the stdio code that parses it, and mapping a signal stack for stack-overflow messages).
/// A write to a peer that went away is then an error to handle (EPIPE), not the end of the
/// program. Jobs get the default back: std's spawn resets SIGPIPE in the child.
pub fn without_rust_runtime() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
