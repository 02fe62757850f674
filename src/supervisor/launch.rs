//! Daemon side of the supervisor: launch a shim for a run, learn its handshake, watch it exit
//! (by pidfd, so adopted shims that are not our children are watched the same way), and signal it.

use super::files::{self, ChildFile, Handshake, SpawnFile};
use super::procfs;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::io::unix::AsyncFd;

pub struct Launched {
    pub shim_pid: i32,
    pub shim_start: u64,
    handshake: tokio::net::UnixStream,
}

/// The `bgrun-shim` binary beside the daemon's own, opened when the daemon starts: an upgrade
/// that replaces the files on disk meanwhile does not mix the running daemon with a shim of
/// another version.
pub struct ShimBinary(Result<std::fs::File, String>);

impl ShimBinary {
    pub fn find() -> ShimBinary {
        let found = crate::programs::beside(crate::programs::SHIM)
            .map_err(|e| format!("cannot find bgrun's own binary: {e}"))
            .and_then(|path| {
                std::fs::File::open(&path).map_err(|e| {
                    format!("cannot open {} ({e}): install bgrun with `cargo install --path .`", path.display())
                })
            });
        ShimBinary(found)
    }
}

/// Starts the shim for one run, handing it the job's listening sockets. Returns as soon as the
/// shim process exists.
pub fn launch(shim: &ShimBinary, dir: &Path, spawn: &SpawnFile, sockets: &[OwnedFd]) -> io::Result<Launched> {
    let binary = shim.0.as_ref().map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.clone()))?;
    files::prepare_run(dir, spawn)?;
    let lock = files::lock_for_shim(dir)?
        .ok_or_else(|| io::Error::other("another supervisor runs this job already (its lock is held)"))?;
    // Executed through the descriptor opened at start (an ELF binary runs from a close-on-exec
    // descriptor: the kernel has opened it before the descriptors close). The lock is the shim's
    // stdin (files::SHIM_LOCK_FD): with no code to run between fork and exec, std spawns with
    // posix_spawn, which does not copy our page tables as a fork would.
    let mut command = Command::new(format!("/proc/self/fd/{}", binary.as_raw_fd()));
    // The job's environment is in its spawn file: the shim needs none of its own.
    command.arg0(crate::programs::SHIM).arg(&spawn.label).arg(dir).env_clear();
    // The shim's stdout is a socket: its handshake comes back on it, and its listening sockets
    // go to it (SCM_RIGHTS), never through an inherited descriptor another launch could catch.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    command.stdin(Stdio::from(lock)).stdout(Stdio::from(OwnedFd::from(theirs))).stderr(Stdio::inherit());
    let mut child = command.spawn()?;
    // The shim holds the lock now; dropping the command closes our descriptors and leaves it held.
    drop(command);
    let shim_pid = child.id() as i32;
    if let Err(e) = hand_over(&ours, spawn, sockets) {
        // A shim that did not take its spec can only fail: it is not left behind unwatched.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // The shim is reaped by `wait_exit`; std's handle is not needed for that.
    drop(child);
    ours.set_nonblocking(true)?;
    Ok(Launched {
        shim_pid,
        shim_start: procfs::start_time(shim_pid).unwrap_or(0),
        handshake: tokio::net::UnixStream::from_std(ours)?,
    })
}

/// The run's spec, then its listening sockets, to the shim just started.
fn hand_over(ours: &std::os::unix::net::UnixStream, spawn: &SpawnFile, sockets: &[OwnedFd]) -> io::Result<()> {
    super::handoff::send_spec(ours, spawn)?;
    if !sockets.is_empty() {
        let fds: Vec<_> = sockets.iter().map(std::os::fd::AsFd::as_fd).collect();
        super::sockets::send_fds(std::os::fd::AsFd::as_fd(ours), &fds)?;
    }
    Ok(())
}

impl Launched {
    /// The job's pid once it runs, or why it could not be spawned.
    pub async fn handshake(mut self) -> Result<ChildFile, String> {
        let mut line = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match self.handshake.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    line.extend_from_slice(&buf[..n]);
                    if line.contains(&b'\n') {
                        break;
                    }
                }
                Err(e) => return Err(format!("lost the job's supervisor: {e}")),
            }
        }
        match serde_json::from_slice::<Handshake>(line.split(|b| *b == b'\n').next().unwrap_or(&[])) {
            Ok(Handshake::Ok { pid, start_time }) => Ok(ChildFile { pid, start_time }),
            Ok(Handshake::Error { error }) => Err(error),
            Err(_) => Err("the job's supervisor exited before starting it".into()),
        }
    }
}

/// A descriptor for process `pid` that becomes readable when it exits (even if it is not our
/// child). ESRCH means there is no such process.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolves once process `pid` (started at `start`) has exited, and reaps it if it is our child.
pub async fn wait_exit(pid: i32, start: u64) -> io::Result<()> {
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e),
    };
    // The pidfd pins the process; if it is not the one we knew, ours is long gone.
    if start != 0 && procfs::start_time(pid) != Some(start) {
        return Ok(());
    }
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and unchanged until it is dropped.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let _ready = afd.readable().await?;
    let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    Ok(())
}

/// Asks the shim to stop the job: its stop signal to everything, SIGKILL after `grace`. The
/// grace travels as the SIGTERM's value (`sigqueue`), not in a file: a stop then costs no inode,
/// which a `down` of many jobs pays for each while the last ones' files are being deleted. A
/// SIGTERM from anyone else (`kill`, no value) stops the job with its spec's grace.
pub fn request_stop(shim_pid: i32, grace: Duration) -> io::Result<()> {
    one_process(shim_pid, Signal::SIGTERM)?;
    let ms = i32::try_from(grace.as_millis()).unwrap_or(i32::MAX);
    let value = libc::sigval { sival_ptr: ms as usize as *mut libc::c_void };
    // SAFETY: sigqueue takes a pid, a signal number and a plain value; it touches no memory of ours.
    if unsafe { libc::sigqueue(shim_pid, libc::SIGTERM, value) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The grace a stop request carries (see [`request_stop`]): a SIGTERM queued with a value.
pub fn requested_grace(info: &libc::signalfd_siginfo) -> Option<Duration> {
    // The value was queued as a pointer-sized integer: read back whole, whatever the byte order.
    (info.ssi_code == libc::SI_QUEUE).then(|| Duration::from_millis(info.ssi_ptr.min(i32::MAX as u64)))
}

/// The safety net when a shim does not finish a stop in time: SIGKILL to every process of the
/// job, found without the shim's help. The shim is asked to finish at once (SIGUSR2) the first
/// time; a shim that still has not exited by the next try (stopped, say) is killed too.
pub fn force_kill(job_id: &str, shim_pid: i32, shim_start: u64, job_pid: i32, kill_shim: bool) {
    if procfs::is_same_process(shim_pid, shim_start) {
        signal(shim_pid, if kill_shim { Signal::SIGKILL } else { Signal::SIGUSR2 });
        for pid in procfs::descendants(shim_pid) {
            signal(pid, Signal::SIGKILL);
        }
    }
    kill_job_processes(job_id, shim_pid, shim_start, job_pid);
}

/// SIGKILL to every process of a job: its process group, its session, and every process that
/// carries its id (those that escaped into sessions of their own). For a job whose shim is gone.
pub fn kill_job_processes(job_id: &str, shim_pid: i32, shim_start: u64, job_pid: i32) {
    if job_pid > 0 {
        let _ = kill(Pid::from_raw(-job_pid), Signal::SIGKILL);
    }
    for pid in procfs::job_processes(job_id, &procfs::run_marker(shim_pid, shim_start), job_pid) {
        signal(pid, Signal::SIGKILL);
    }
}

/// Asks a PTY job's shim to resize its terminal.
pub fn resize_pty(dir: &Path, shim_pid: i32, cols: u16, rows: u16) {
    if files::write_pty_size(dir, cols, rows).is_ok() {
        ask(shim_pid);
    }
}

/// Tells a shim to look at the requests written into its job's directory (SIGUSR1).
pub fn ask(shim_pid: i32) {
    signal(shim_pid, Signal::SIGUSR1);
}

/// Signals one process (see [`one_process`]).
fn signal(pid: i32, sig: Signal) {
    match one_process(pid, sig) {
        Ok(()) => {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        Err(e) => crate::warn!("bgrun: {e}"),
    }
}

/// Whether `pid` names one process to send `sig` to: never a pid of 0 or less, which is a process
/// group (0: the daemon's own).
fn one_process(pid: i32, sig: Signal) -> io::Result<()> {
    if pid > 0 { Ok(()) } else { Err(io::Error::other(format!("refusing to send {sig} to pid {pid}"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(code: i32, value: u64) -> libc::signalfd_siginfo {
        // SAFETY: signalfd_siginfo is plain integers, for which all zeros is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        info.ssi_signo = libc::SIGTERM as u32;
        info.ssi_code = code;
        info.ssi_ptr = value;
        info
    }

    #[test]
    fn only_a_queued_sigterm_carries_a_grace() {
        assert_eq!(requested_grace(&info(libc::SI_QUEUE, 1500)), Some(Duration::from_millis(1500)));
        assert_eq!(requested_grace(&info(libc::SI_QUEUE, 0)), Some(Duration::ZERO));
        assert_eq!(requested_grace(&info(libc::SI_USER, 1500)), None);
    }
}
