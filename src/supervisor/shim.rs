//! The shim: a small synchronous process (`bgrun __shim <job-dir>`) that is the parent of one run
//! of a job. It exists so that nothing about a job depends on the daemon being alive:
//! - it holds the job's output pipes and writes them to the log file;
//! - it is a child subreaper, so processes the job leaves behind become its children and can be
//!   stopped rather than orphaned;
//! - it reaps the job and writes the exit status to a file that any later daemon can read.
//!
//! Protocol with the daemon (see [`super::files`]): it reads `spawn.json`, prints one handshake line
//! on stdout, writes `child.json` and finally `exit.json`. SIGTERM asks it to stop the job (grace in
//! the `stop` file), SIGUSR2 to kill everything at once.

use super::files::{self, ChildFile, ExitFile, Handshake, SpawnFile};
use super::procfs;
use crate::logs::{Stream, writer::LogWriter};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an unfinished line may wait for its end before it is shown as a fragment.
const PARTIAL_LINE_DELAY: Duration = Duration::from_millis(50);
const READ_CHUNK: usize = 512 * 1024;
const PIPE_SIZE: i32 = 1024 * 1024;
const EXIT_FILE_PATIENCE: Duration = Duration::from_secs(10);

pub fn main(dir: &Path) -> i32 {
    match run(dir) {
        Ok(()) => 0,
        Err(msg) => {
            // Before the handshake this reaches the daemon; after it, the daemon log.
            let _ = writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string(&Handshake::Error { error: msg.clone() }).unwrap_or_default()
            );
            crate::warn!("bgrun shim {}: {msg}", dir.display());
            1
        }
    }
}

fn run(dir: &Path) -> Result<(), String> {
    let me = std::process::id() as i32;
    let _lock =
        files::keep_shim_lock(dir, files::ShimFile { pid: me, start_time: procfs::start_time(me).unwrap_or(0) })
            .map_err(|e| format!("cannot take the job's lock: {e}"))?;
    let spawn = files::read_spawn(dir).map_err(|e| format!("cannot read spawn.json: {e}"))?;
    // Our own session: the daemon's death, or a signal to its group, must not reach the job.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let mut mask = SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        mask.add(sig);
    }
    mask.thread_block().map_err(|e| format!("sigprocmask: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    let log_path = dir.join(crate::logs::LOG_FILE);
    let next_line = crate::logs::reader::last_line_number(&log_path).unwrap_or(0) + 1;
    let log =
        crate::home::Home::open_private(&log_path).map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let mut writer = LogWriter::new(log, next_line);

    let stdin = files::open_stdin_fifo(dir).map_err(|e| format!("cannot create stdin fifo: {e}"))?;
    let mut spawn = spawn;
    let notify = if spawn.notify {
        let (socket, name) = notify_socket()?;
        spawn.env.insert("NOTIFY_SOCKET".into(), name);
        Some(socket)
    } else {
        None
    };

    // A PTY job reads and writes its terminal; the shim copies the stdin FIFO into it. A piped
    // job gets the FIFO itself as stdin, and two pipes.
    let (child, mut pipes, pty) = match &spawn.pty {
        Some(size) => {
            let pty =
                nix::pty::openpty(Some(&winsize(size.cols, size.rows)), None).map_err(|e| format!("openpty: {e}"))?;
            let _ = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            let io = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("pty: {e}"));
            let child = spawn_child(&spawn, io(&pty.slave)?, io(&pty.slave)?, pty.slave, true)?;
            let master_out = pty.master.try_clone().map_err(|e| format!("pty: {e}"))?;
            let _ = nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            (child, [Some((master_out, Stream::Pty)), None], Some((pty.master, stdin)))
        }
        None => {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let child = spawn_child(&spawn, stdin, out_w, err_w, false)?;
            (child, [Some((out_r, Stream::Stdout)), Some((err_r, Stream::Stderr))], None)
        }
    };
    let child_pid = Pid::from_raw(child.id() as i32);
    let start_time = procfs::start_time(child_pid.as_raw()).unwrap_or(0);
    files::write_child(dir, &ChildFile { pid: child_pid.as_raw(), start_time })
        .map_err(|e| format!("cannot write child.json: {e}"))?;
    handshake(&Handshake::Ok { pid: child_pid.as_raw(), start_time });

    let mut sup = Supervision {
        dir,
        child: child_pid,
        grace: Duration::from_millis(spawn.grace_ms),
        leader: None,
        stop_requested: false,
        kill_at: None,
        childless: false,
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let mut partial_since: Option<Instant> = None;

    loop {
        let now = Instant::now();
        let mut wake: Option<Duration> = sup.kill_at.map(|t| t.saturating_duration_since(now));
        if let Some(since) = partial_since {
            let left = (since + PARTIAL_LINE_DELAY).saturating_duration_since(now);
            wake = Some(wake.map_or(left, |w| w.min(left)));
        }
        let timeout = match wake {
            Some(d) => PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let ready = {
            let mut fds: Vec<PollFd> =
                pipes.iter().flatten().map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)).collect();
            fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
            if let Some(n) = &notify {
                fds.push(PollFd::new(n.as_fd(), PollFlags::POLLIN));
            }
            if let Some((_, fifo)) = &pty {
                fds.push(PollFd::new(fifo.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            fds.iter().map(|p| p.any().unwrap_or(false)).collect::<Vec<_>>()
        };

        let ms = crate::clock::unix_ms();
        let mut idx = 0;
        for pipe in pipes.iter_mut() {
            let Some((fd, stream)) = pipe else { continue };
            if ready[idx] && !read_into(fd, *stream, &mut buf, &mut writer, ms) {
                *pipe = None;
            }
            idx += 1;
        }
        if ready[idx] {
            while let Ok(Some(info)) = sigfd.read_signal() {
                if info.ssi_signo as i32 == Signal::SIGUSR1 as i32 {
                    if let (Some((master, _)), Some((cols, rows))) = (&pty, files::read_pty_size(dir)) {
                        resize(master, cols, rows);
                    }
                } else {
                    sup.on_signal(info.ssi_signo as i32);
                }
            }
        }
        let mut next = idx + 1;
        if let Some(n) = &notify {
            if ready.get(next) == Some(&true) {
                read_notifications(n, dir);
            }
            next += 1;
        }
        if let Some((master, fifo)) = &pty
            && ready.get(next) == Some(&true)
        {
            forward_input(fifo, master, &mut buf);
        }
        sup.reap();
        sup.escalate();

        if writer.has_partial() {
            let since = *partial_since.get_or_insert(Instant::now());
            if since.elapsed() >= PARTIAL_LINE_DELAY {
                writer.flush_partial(ms);
                partial_since = None;
            }
        } else {
            partial_since = None;
        }
        // A write that fails (a full disk) drops and counts what it could not write, and the
        // loop goes on reading: the job must never block on its output, nor die with us.
        let _ = writer.flush();

        if sup.leader.is_some() && sup.childless {
            // Nobody in the job's tree is left to hold the pipes: take what is buffered and stop.
            for (fd, stream) in pipes.iter_mut().flatten() {
                while read_into(fd, *stream, &mut buf, &mut writer, ms) {}
            }
            break;
        }
    }
    let _ = writer.finish(crate::clock::unix_ms());
    let status = sup.leader.unwrap_or(WaitStatus::StillAlive);
    let (code, signal) = match status {
        WaitStatus::Exited(_, code) => (Some(code), None),
        WaitStatus::Signaled(_, sig, _) => (None, Some(sig as i32)),
        _ => (None, None),
    };
    let exit = ExitFile { code, signal, stopped: sup.stop_requested, unix_ms: crate::clock::unix_ms() };
    // How the job ended is what the daemon needs most: on a full disk, keep trying for a while
    // (the file is a few dozen bytes) before giving up.
    let deadline = Instant::now() + EXIT_FILE_PATIENCE;
    loop {
        match files::write_exit(dir, &exit) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(format!("cannot write exit.json: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Reads once from a ready pipe. Returns false at end of file.
fn read_into(fd: &OwnedFd, stream: Stream, buf: &mut [u8], writer: &mut LogWriter<File>, ms: u64) -> bool {
    match nix::unistd::read(fd, buf) {
        Ok(0) => false,
        Ok(n) => {
            writer.push(stream, &buf[..n], ms);
            true
        }
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => true,
        // A PTY master reads EIO once nobody holds the terminal any more: its end of file.
        Err(_) => false,
    }
}

/// A datagram socket in the abstract namespace (no path-length limit, nothing to clean up),
/// named as NOTIFY_SOCKET expects: `@name`.
fn notify_socket() -> Result<(std::os::unix::net::UnixDatagram, String), String> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("bgrun-notify-{}-{}", std::process::id(), crate::clock::unix_ms());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| format!("notify socket: {e}"))?;
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).map_err(|e| format!("notify socket: {e}"))?;
    socket.set_nonblocking(true).map_err(|e| format!("notify socket: {e}"))?;
    Ok((socket, format!("@{name}")))
}

/// Records `READY=1` for the daemon; other notify fields are accepted and ignored.
fn read_notifications(socket: &std::os::unix::net::UnixDatagram, dir: &Path) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        if buf[..n].split(|b| *b == b'\n').any(|l| l == b"READY=1") {
            let _ = files::write_ready(dir);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // A larger pipe means fewer wake-ups for chatty jobs; not fatal if the system refuses.
    let _ = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let _ = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    Ok((r, w))
}

fn winsize(cols: u16, rows: u16) -> nix::pty::Winsize {
    nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// Sets the terminal size; the kernel tells the job with SIGWINCH.
fn resize(master: &OwnedFd, cols: u16, rows: u16) {
    let ws = winsize(cols, rows);
    // SAFETY: TIOCSWINSZ reads one Winsize from the pointer, which outlives the call.
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(master), libc::TIOCSWINSZ, &ws) };
}

/// Copies what `send` and `attach` wrote to the stdin FIFO into the terminal.
fn forward_input(fifo: &OwnedFd, master: &OwnedFd, buf: &mut [u8]) {
    while let Ok(n) = nix::unistd::read(fifo, buf) {
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            match nix::unistd::write(master, data) {
                Ok(w) => data = &data[w..],
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(100u8));
                }
                Err(_) => return,
            }
        }
    }
}

fn spawn_child(
    spawn: &SpawnFile,
    stdin: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
    controlling_tty: bool,
) -> Result<std::process::Child, String> {
    let (program, args) = spawn.argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(&spawn.env)
        .current_dir(&spawn.cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session and process group, so the whole job can be signalled as one.
            libc::setsid();
            // A PTY job's terminal becomes its controlling terminal (stdin is the slave).
            if controlling_tty {
                libc::ioctl(0, libc::TIOCSCTTY, 0);
            }
            // The shim blocks signals to read them from a signalfd; the job must not inherit that.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    // Dropping `cmd` closes our copies of the pipes' write ends, so EOF means the job closed them.
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("cannot run {program:?}: command not found"),
        std::io::ErrorKind::PermissionDenied => format!("cannot run {program:?}: permission denied"),
        _ => format!("cannot run {program:?}: {e}"),
    })
}

fn handshake(h: &Handshake) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(h).unwrap_or_default());
    let _ = out.flush();
    drop(out);
    // From here on the daemon may be gone; never write to its pipe again.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
}

struct Supervision<'a> {
    dir: &'a Path,
    child: Pid,
    grace: Duration,
    leader: Option<WaitStatus>,
    stop_requested: bool,
    /// When everything still running in the job's tree gets SIGKILL.
    kill_at: Option<Instant>,
    /// Set by `reap` once no process of the job's tree is left.
    childless: bool,
}

impl Supervision<'_> {
    fn on_signal(&mut self, signo: i32) {
        match Signal::try_from(signo) {
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) if !self.stop_requested => {
                self.stop_requested = true;
                let grace = files::read_stop_grace(self.dir).unwrap_or(self.grace);
                // The group first: cheap, and in the common case all there is. Processes that left
                // the group are found once the leader is gone (they become our children then),
                // and at the SIGKILL.
                self.signal_group(Signal::SIGTERM);
                self.kill_at = Some(Instant::now() + grace);
            }
            Ok(Signal::SIGUSR2) => {
                self.stop_requested = true;
                self.kill_at = Some(Instant::now());
            }
            _ => {}
        }
    }

    /// Reaps every child that has exited: the job itself and anything reparented to us.
    fn reap(&mut self) {
        let mut leader_exited = false;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::StillAlive) => {
                    self.childless = false;
                    break;
                }
                Err(Errno::ECHILD) => {
                    self.childless = true;
                    break;
                }
                Err(_) => break,
                Ok(status) if status.pid() == Some(self.child) => {
                    self.leader = Some(status);
                    leader_exited = true;
                }
                Ok(_) => {}
            }
        }
        // What the job left behind goes too, gently first, including processes that left its
        // group (they are our children now). A stop already under way keeps its deadline.
        if leader_exited && !self.childless {
            self.signal_tree(Signal::SIGTERM);
            self.kill_at.get_or_insert(Instant::now() + self.grace);
        }
    }

    fn escalate(&mut self) {
        if let Some(at) = self.kill_at
            && Instant::now() >= at
        {
            self.signal_tree(Signal::SIGKILL);
            self.kill_at = None;
        }
    }

    fn signal_group(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(-self.child.as_raw()), sig);
    }

    /// Signals the job's process group and every process descended from us, including ones
    /// that started sessions of their own (this reads all of /proc).
    fn signal_tree(&self, sig: Signal) {
        self.signal_group(sig);
        for pid in procfs::descendants(std::process::id() as i32) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}
