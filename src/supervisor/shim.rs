//! The shim: a small synchronous process (`bgrun-shim <job> <job-dir>`) that is the parent of one run
//! of a job. It exists so that nothing about a job depends on the daemon being alive:
//! - it holds the job's output pipes and writes them to the log file;
//! - it is a child subreaper, so processes the job leaves behind become its children and can be
//!   stopped rather than orphaned;
//! - it reaps the job and records how it ended where any later daemon can read it.
//!
//! Protocol with the daemon (see [`super::files`]): it reads its spec from its launch socket (see
//! [`super::handoff`]), records the job's process in the lock file it holds, prints one handshake
//! line on that socket and finally records how the run ended in the lock file. SIGTERM asks it to
//! stop the job (the grace is its value), SIGUSR2 to kill everything at once, SIGUSR1 to look at
//! its requests (a PTY's new size; a new run to start beside the current one, to promote or to
//! abort: see [`NextRun`]).

use super::files::{self, ChildFile, ExitFile, Handshake, SpawnFile};
use super::live_screen::LiveScreen;
use super::mirror::Mirror;
use super::{container, procfs, sockets};
use crate::logs::Stream;
use crate::logs::writer::{LogWriter, Source};
use crate::spec::KillMode;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an unfinished line may wait for its end before it is shown as a fragment.
const PARTIAL_LINE_DELAY: Duration = Duration::from_millis(50);
const READ_CHUNK: usize = 256 * 1024;
/// How soon the shim comes back to write an index entry that waits for its millisecond to end.
const SEAL_DELAY: Duration = Duration::from_millis(1);
const PIPE_SIZE: i32 = 1024 * 1024;
const EXIT_RECORD_PATIENCE: Duration = Duration::from_secs(10);
/// How long a daemonizing job's first process may take, once it exited, to leave its daemon.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(5);
const FOLLOW_POLL: Duration = Duration::from_millis(20);
/// A program forks at most twice to daemonize.
const MAX_HOPS: u32 = 2;

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
    let stdin = JobStdin::new()?;
    let record = files::ShimFile {
        pid: me,
        start_time: procfs::start_time(me).unwrap_or(0),
        child: None,
        stdin: Some(stdin.writer()),
        exit: None,
    };
    let mut lock = files::keep_shim_lock(dir, record).map_err(|e| format!("cannot take the job's lock: {e}"))?;
    let mut spawn = super::handoff::receive_spec_at_launch()?;
    let listening = match &spawn.listen {
        Some(listen) => sockets::receive_at_launch(listen.addresses.len())?,
        None => Vec::new(),
    };
    // Our own session: the daemon's death, or a signal to its group, must not reach the job.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let signals = block_signals()?;

    let writer = LogWriter::open(dir, spawn.log_limits).map_err(|e| format!("cannot open the job's log: {e}"))?;

    mark_run(&mut spawn);
    let notify = if spawn.notify {
        let (socket, name) = notify_socket()?;
        spawn.env.insert("NOTIFY_SOCKET".into(), name);
        Some(socket)
    } else {
        None
    };
    // Opened before the job starts: a file that cannot be opened is a launch that failed.
    let mirror = Mirror::open(&spawn)?;
    pass_listen_env(&mut spawn, listening.len());
    if spawn.fetch {
        fetch(&spawn)?;
    }
    let job_id = spawn.env.get(procfs::JOB_ID_ENV).cloned().unwrap_or_default();
    if !spawn.free_ports.is_empty() {
        let stopped = super::free_ports::free(&spawn.free_ports, &job_id, spawn.force);
        if !stopped.is_empty() {
            let _ = files::write_freed(dir, &stopped);
        }
    }
    if let Some(c) = spawn.container.clone() {
        container::prepare(&c, &job_id, spawn.force, &spawn.env)?;
        spawn.argv = container::argv(&spawn.argv, &c, &job_id, &dir.join(container::CIDFILE));
        if spawn.stop.command.is_none() {
            spawn.stop.command = Some(container::stop_command(&c, spawn.grace_ms));
        }
    }
    let (child, outputs, pty) = start_job(&stdin, &spawn, &listening, 0)?;
    let handback = (!listening.is_empty()).then(|| sockets::hand_back_listener(dir)).flatten();
    let child_pid = Pid::from_raw(child.id() as i32);
    let start_time = procfs::start_time(child_pid.as_raw()).unwrap_or(0);
    lock.set_child(ChildFile { pid: child_pid.as_raw(), start_time })
        .map_err(|e| format!("cannot record the job's process: {e}"))?;
    handshake(&Handshake::Ok { pid: child_pid.as_raw(), start_time });
    // Only a stop command needs the job's environment again.
    if spawn.stop.command.is_none() {
        spawn.env = Default::default();
    }
    drop(child);
    // What starting took (the spawn file, the environment) is freed: give its pages back, so the
    // shim's memory while the job runs is only what it keeps.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    release_deep_stack();

    let screen = spawn.pty.as_ref().map(|p| LiveScreen::new(p.cols, p.rows));
    let mut shim = Shim {
        io: Io { outputs, signals, notify, pty, handback: handback.map(|l| (l, listening)) },
        writer,
        sup: Supervision {
            dir,
            lock,
            stdin,
            stop_signal: stop_signal(&spawn),
            grace: Duration::from_millis(spawn.grace_ms),
            spawn,
            child: child_pid,
            run: 0,
            leader: None,
            awaiting_main: None,
            hops: 0,
            stop_requested: false,
            kill_at: None,
            childless: false,
            next: None,
            retiring: Vec::new(),
            request: None,
            last_run: 0,
        },
        buf: ReadBuffer::new(),
        screen,
        mirror,
    };
    while shim.step()? {}
    // The container goes with its run: a client killed -9 leaves none running unseen.
    if let Some(c) = &shim.sup.spawn.container {
        container::remove(c, &shim.sup.spawn.env);
    }
    let _ = shim.writer.finish(crate::clock::unix_ms());
    let exit = exit_file(shim.sup.leader, shim.sup.stop_requested, crate::clock::unix_ms());
    // How the job ended is what the daemon needs most. It goes into the lock file's record, in
    // the block the record already has: no inode to allocate as the job stops (a `down` of many
    // jobs stops them while the first ones' files are being deleted), nor a block on a full disk.
    // A write that fails anyway (an I/O error) is tried again for a while before giving up.
    let deadline = Instant::now() + EXIT_RECORD_PATIENCE;
    loop {
        match shim.sup.lock.set_exit(exit.clone()) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(format!("cannot record how the job ended: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The signal that asks the job to stop.
fn stop_signal(spawn: &SpawnFile) -> Signal {
    spawn.stop.signal.as_deref().and_then(|s| crate::spec::parse_signal(s).ok()).unwrap_or(Signal::SIGTERM)
}

/// Every process a run starts carries the shim's marker (see [`procfs::RUN_ENV`]).
fn mark_run(spawn: &mut SpawnFile) {
    let me = std::process::id() as i32;
    spawn.env.insert(procfs::RUN_ENV.into(), procfs::run_marker(me, procfs::start_time(me).unwrap_or(0)));
}

/// The variables of systemd's socket-activation protocol (LISTEN_PID is set in the child).
fn pass_listen_env(spawn: &mut SpawnFile, sockets: usize) {
    if let Some(listen) = &spawn.listen {
        spawn.env.insert("LISTEN_FDS".into(), sockets.to_string());
        spawn.env.insert("LISTEN_FDNAMES".into(), vec![listen.name.as_str(); sockets].join(":"));
    }
}

/// Gives back the stack pages that starting the job went down to (parsing the spawn file,
/// spawning): the shim's loop, which runs from here on, stays shallower, and those pages would
/// otherwise stay in its private memory for good (4 to 8 KB of its ~95). Everything more than
/// `KEEP` below this frame is dead: the shim runs no signal handlers (signals come through a
/// signalfd), and a page the loop does reach again is simply mapped anew.
fn release_deep_stack() {
    const KEEP: usize = 4 * 1024;
    /// Further down than starting ever goes (pages that were never touched cost nothing).
    const DEPTH: usize = 1024 * 1024;
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let top = sp.saturating_sub(KEEP) & !(page - 1);
    let bottom = top.saturating_sub(DEPTH);
    // SAFETY: the range is below the live part of this thread's stack (and may run past its
    // mapping, which madvise skips): no live value is there, and MADV_DONTNEED leaves zeroed
    // pages behind for any later use.
    unsafe { libc::madvise(bottom as *mut libc::c_void, top - bottom, libc::MADV_DONTNEED) };
}

/// The signals the shim acts on, read from a descriptor instead of interrupting it.
fn block_signals() -> Result<SignalFd, String> {
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        mask.add(sig);
    }
    mask.thread_block().map_err(|e| format!("sigprocmask: {e}"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(|e| format!("signalfd: {e}"))
}

/// One of the job's outputs, read until its end of file, and the run it belongs to.
struct Output {
    fd: OwnedFd,
    stream: Stream,
    run: u8,
}

type Outputs = Vec<Output>;
/// A PTY job's terminal master and the stdin pipe the shim copies into it.
type Terminal = (OwnedFd, OwnedFd);

/// The job's stdin: a pipe whose both ends the shim holds for its whole life, so the job never
/// sees end-of-file just because the daemon went away (or between two `send`s). The daemon
/// writes to it through the write end's descriptor in /proc (see `files::open_stdin`); every run
/// the shim starts reads the same pipe.
struct JobStdin {
    read: OwnedFd,
    write: OwnedFd,
}

impl JobStdin {
    fn new() -> Result<JobStdin, String> {
        // Blocking, as a program expects its stdin to be (a PTY job's is read by the shim alone,
        // which makes its end non-blocking).
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("the job's stdin: {e}"))?;
        Ok(JobStdin { read, write })
    }

    /// The descriptor the daemon opens.
    fn writer(&self) -> i32 {
        self.write.as_raw_fd()
    }

    fn reader(&self) -> Result<OwnedFd, String> {
        self.read.try_clone().map_err(|e| format!("the job's stdin: {e}"))
    }
}

/// Starts the job. A PTY job reads and writes its terminal, and the shim copies the stdin pipe
/// into it; a piped job gets the pipe itself as stdin, and two pipes for its output.
fn start_job(
    stdin: &JobStdin,
    spawn: &SpawnFile,
    listening: &[OwnedFd],
    run: u8,
) -> Result<(std::process::Child, Outputs, Option<Terminal>), String> {
    let stdin = stdin.reader()?;
    match &spawn.pty {
        Some(size) => {
            let pty =
                nix::pty::openpty(Some(&winsize(size.cols, size.rows)), None).map_err(|e| format!("openpty: {e}"))?;
            let _ = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            let io = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("pty: {e}"));
            let child = spawn_child(spawn, io(&pty.slave)?, io(&pty.slave)?, pty.slave, true, listening)?;
            let master_out = pty.master.try_clone().map_err(|e| format!("pty: {e}"))?;
            let _ = nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            Ok((child, vec![Output { fd: master_out, stream: Stream::Pty, run }], Some((pty.master, stdin))))
        }
        None => {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let child = spawn_child(spawn, stdin, out_w, err_w, false, listening)?;
            let outputs = vec![
                Output { fd: out_r, stream: Stream::Stdout, run },
                Output { fd: err_r, stream: Stream::Stderr, run },
            ];
            Ok((child, outputs, None))
        }
    }
}

/// Everything the shim waits on.
struct Io {
    outputs: Outputs,
    signals: SignalFd,
    notify: Option<std::os::unix::net::UnixDatagram>,
    pty: Option<Terminal>,
    /// Where a restarted daemon takes the job's listening sockets back from, and the sockets.
    handback: Option<(std::os::unix::net::UnixListener, Vec<OwnedFd>)>,
}

/// Which of [`Io`]'s descriptors have something to read.
#[derive(Default)]
struct Readable {
    outputs: Vec<bool>,
    signals: bool,
    notify: bool,
    input: bool,
    handback: bool,
}

impl Io {
    fn wait(&self, timeout: Option<Duration>) -> Result<Readable, String> {
        let timeout = match timeout {
            Some(d) => PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let outputs = self.outputs.iter().map(|o| Some(o.fd.as_fd()));
        let others = [
            Some(self.signals.as_fd()),
            self.notify.as_ref().map(|n| n.as_fd()),
            self.pty.as_ref().map(|(_, fifo)| fifo.as_fd()),
            self.handback.as_ref().map(|(listener, _)| listener.as_fd()),
        ];
        // One slot per descriptor that exists, remembered by position.
        let slots: Vec<Option<std::os::fd::BorrowedFd>> = outputs.chain(others).collect();
        let mut fds: Vec<PollFd> = slots.iter().flatten().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let mut results = fds.iter().map(|p| p.any().unwrap_or(false));
        let ready: Vec<bool> = slots.iter().map(|s| s.is_some() && results.next().unwrap_or(false)).collect();
        let (outputs, others) = ready.split_at(self.outputs.len());
        Ok(Readable {
            outputs: outputs.to_vec(),
            signals: others[0],
            notify: others[1],
            input: others[2],
            handback: others[3],
        })
    }
}

/// The shim's state while the job runs.
struct Shim<'a> {
    io: Io,
    writer: LogWriter,
    sup: Supervision<'a>,
    buf: ReadBuffer,
    /// A PTY job's terminal as it is now.
    screen: Option<LiveScreen>,
    /// Files that get a copy of the output.
    mirror: Mirror,
}

impl Shim<'_> {
    /// Waits for something to happen and deals with it. False once the job is over and its
    /// output is all read.
    fn step(&mut self) -> Result<bool, String> {
        let mut wake = next_wake(self.sup.next_kill(), self.writer.partial_since(), Instant::now());
        // While a fragment waits, the screen waits with it (its timer wakes us).
        if let Some(due) =
            self.screen.as_ref().filter(|_| !self.writer.has_partial()).and_then(|s| s.due_in(Instant::now()))
        {
            wake = Some(wake.map_or(due, |w| w.min(due)));
        }
        if self.sup.awaiting_main.is_some() {
            // The pidfile may be written a moment after the first process exits: look again soon.
            wake = Some(wake.map_or(FOLLOW_POLL, |w| w.min(FOLLOW_POLL)));
        }
        if let Some(due) = self.buf.release_in(Instant::now()) {
            wake = Some(wake.map_or(due, |w| w.min(due)));
        }
        if self.writer.unsealed() {
            // The newest index entry is written once its millisecond is over.
            wake = Some(wake.map_or(SEAL_DELAY, |w| w.min(SEAL_DELAY)));
        }
        let ready = self.io.wait(wake)?;
        let ms = crate::clock::unix_ms();
        let mut closed = Vec::new();
        for (i, readable) in ready.outputs.iter().enumerate() {
            let o = &self.io.outputs[i];
            if *readable && !read_into(o, self.buf.get(), &mut self.writer, self.screen.as_mut(), &mut self.mirror, ms)
            {
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            let run = self.io.outputs.remove(i).run;
            // A run that is not the job's any more (replaced, or a new one that failed) ends its
            // lines once all its outputs are closed; the job's own run ends them with the log.
            if run != self.sup.run && !self.io.outputs.iter().any(|o| o.run == run) {
                self.writer.finish_run(run, ms);
            }
        }
        if ready.signals {
            self.on_signals();
        }
        if let (Some(n), true) = (&self.io.notify, ready.notify) {
            read_notifications(n, self.sup.dir);
        }
        if let (Some((master, fifo)), true) = (&self.io.pty, ready.input) {
            forward_input(fifo, master, self.buf.get());
        }
        if let (Some((listener, sockets)), true) = (&self.io.handback, ready.handback) {
            sockets::hand_back(listener, sockets);
        }
        self.buf.release_if_idle(Instant::now());
        self.sup.reap();
        self.sup.follow_main();
        self.sup.escalate();
        self.sup.retire();
        self.flush_partial_line();
        // A write that fails (a full disk) drops and counts what it could not write, and the
        // loop goes on reading: the job must never block on its output, nor die with us.
        let _ = self.writer.flush();
        let over = self.sup.leader.is_some() && self.sup.childless;
        if over {
            // Nobody in the job's tree is left to hold the pipes: take what is buffered and stop.
            for o in &self.io.outputs {
                while read_into(o, self.buf.get(), &mut self.writer, self.screen.as_mut(), &mut self.mirror, ms) {}
            }
            let _ = self.writer.flush();
        }
        // The screen is written with the log's length it shows: never while the log still holds
        // back a fragment the screen already shows (attach would draw it twice).
        if let Some(screen) = self.screen.as_mut().filter(|_| over || !self.writer.has_partial())
            && screen.is_due(over)
        {
            // The screen shows every byte read so far: its cursor must be after all of them.
            let _ = self.writer.flush_all();
            screen.write(self.sup.dir, self.writer.cursor());
        }
        if over {
            return Ok(false);
        }
        Ok(true)
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.io.signals.read_signal() {
            if info.ssi_signo as i32 == Signal::SIGUSR1 as i32 {
                if let (Some((master, _)), Some((cols, rows))) = (&self.io.pty, files::read_pty_size(self.sup.dir)) {
                    resize(master, cols, rows);
                    if let Some(screen) = &mut self.screen {
                        screen.resize(cols, rows);
                    }
                }
                self.on_next_request();
            } else {
                self.sup.on_signal(info.ssi_signo as i32, super::launch::requested_grace(&info));
            }
        }
    }

    /// Acts on the daemon's latest request about a new run, once.
    fn on_next_request(&mut self) {
        let Some(request) = files::read_next_request(self.sup.dir) else { return };
        if self.sup.request == Some(request) || self.sup.stop_requested {
            return;
        }
        self.sup.request = Some(request);
        match request {
            files::NextRequest::Start { next } => {
                let listening = self.io.handback.as_ref().map_or(&[][..], |(_, sockets)| &sockets[..]);
                let started = match self.sup.start_next(next, listening) {
                    Ok((child, run, outputs)) => {
                        self.io.outputs.extend(outputs);
                        files::NextStarted::Ok { pid: child.pid, start_time: child.start_time, run }
                    }
                    Err(failed) => failed,
                };
                let answer = files::NextChild { next, started };
                if let Err(e) = files::write_next_child(self.sup.dir, &answer) {
                    crate::warn!("bgrun shim: cannot answer the request for a new run: {e}");
                }
            }
            files::NextRequest::Promote { next } => self.sup.promote(next),
            files::NextRequest::Abort { next } => {
                if self.sup.next.as_ref().is_some_and(|n| n.id == next) {
                    self.sup.abort_next();
                }
            }
        }
    }

    /// An unfinished line (a prompt) is indexed as a fragment once it has waited long enough.
    fn flush_partial_line(&mut self) {
        if self.writer.partial_since().is_some_and(|since| since.elapsed() >= PARTIAL_LINE_DELAY) {
            self.writer.flush_partial(PARTIAL_LINE_DELAY);
            // The screen's log cursor now covers the fragment: write it again with it.
            if let Some(screen) = &mut self.screen {
                screen.touch();
            }
        }
    }
}

/// The buffer output is read into: large, so a chatty job is read in few calls, yet costing no
/// memory while the job is quiet, as its pages are given back after [`BUFFER_IDLE`] unused.
struct ReadBuffer {
    buf: Vec<u8>,
    used_at: Option<Instant>,
}

const BUFFER_IDLE: Duration = Duration::from_secs(1);

impl ReadBuffer {
    fn new() -> ReadBuffer {
        // Zeroed allocations this large come straight from the kernel, untouched: they cost
        // nothing until the first read.
        ReadBuffer { buf: vec![0u8; READ_CHUNK], used_at: None }
    }

    fn get(&mut self) -> &mut [u8] {
        self.used_at = Some(Instant::now());
        &mut self.buf
    }

    /// How long until the buffer's pages are due to be given back.
    fn release_in(&self, now: Instant) -> Option<Duration> {
        self.used_at.map(|at| (at + BUFFER_IDLE).saturating_duration_since(now))
    }

    fn release_if_idle(&mut self, now: Instant) {
        if self.release_in(now) != Some(Duration::ZERO) {
            return;
        }
        self.used_at = None;
        let page = 4096;
        let start = self.buf.as_ptr() as usize;
        let (first, end) = (start.next_multiple_of(page), (start + self.buf.len()) / page * page);
        if end > first {
            // SAFETY: the range lies inside the buffer, which we own; MADV_DONTNEED only makes
            // its pages read back as zeroes, a valid content for bytes we never read unwritten.
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED) };
        }
    }
}

/// How long the shim may sleep: until the SIGKILL of a stop, or until an unfinished line is due.
fn next_wake(kill_at: Option<Instant>, partial_since: Option<Instant>, now: Instant) -> Option<Duration> {
    let kill = kill_at.map(|t| t.saturating_duration_since(now));
    let partial = partial_since.map(|since| (since + PARTIAL_LINE_DELAY).saturating_duration_since(now));
    match (kill, partial) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How the job ended, from its leader's wait status.
fn exit_file(leader: Option<WaitStatus>, stopped: bool, unix_ms: u64) -> ExitFile {
    let (code, signal) = match leader {
        Some(WaitStatus::Exited(_, code)) => (Some(code), None),
        Some(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
        _ => (None, None),
    };
    ExitFile { code, signal, stopped, unix_ms }
}

/// Reads once from a ready pipe into the log (and a PTY's bytes into its live screen). Returns
/// false at end of file.
fn read_into(
    output: &Output,
    buf: &mut [u8],
    writer: &mut LogWriter,
    screen: Option<&mut LiveScreen>,
    mirror: &mut Mirror,
    ms: u64,
) -> bool {
    match nix::unistd::read(&output.fd, buf) {
        Ok(0) => false,
        Ok(n) => {
            writer.push_from(Source { run: output.run, stream: output.stream }, &buf[..n], ms);
            mirror.write(output.stream, &buf[..n], ms);
            if let Some(screen) = screen {
                screen.feed(&buf[..n]);
            }
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

/// Copies what `send` and `attach` wrote to the job's stdin pipe into the terminal.
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
    listening: &[OwnedFd],
) -> Result<std::process::Child, String> {
    let (program, args) = spawn.argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    if listening.is_empty() {
        cmd.env_clear().envs(&spawn.env);
    } else {
        // LISTEN_PID must be the job's own pid, known only after the fork: the job inherits our
        // environment (empty when the daemon starts us; an earlier run's when a new run starts
        // beside it), set to its own here and completed in the child below.
        // SAFETY (both): the shim is single-threaded: nothing reads the environment meanwhile.
        for (key, _) in std::env::vars_os() {
            unsafe { std::env::remove_var(key) };
        }
        for (key, value) in &spawn.env {
            unsafe { std::env::set_var(key, value) };
        }
    }
    let sockets: Vec<i32> = listening.iter().map(|fd| fd.as_raw_fd()).collect();
    cmd.args(args).current_dir(&spawn.cwd).stdin(Stdio::from(stdin)).stdout(Stdio::from(out)).stderr(Stdio::from(err));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session and process group, so the whole job can be signalled as one.
            libc::setsid();
            // A PTY job's terminal becomes its controlling terminal (stdin is the slave).
            if controlling_tty {
                libc::ioctl(0, libc::TIOCSCTTY, 0);
            }
            unblock_signals();
            if !sockets.is_empty() {
                pass_sockets(&sockets)?;
            }
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

/// Fast-forwards the job's git checkout with `bgrun-deploy` (beside this program: git is linked
/// into it alone), giving up after a minute. Its one line of refusal fails the start.
fn fetch(spawn: &SpawnFile) -> Result<(), String> {
    let deploy = crate::programs::beside(crate::programs::DEPLOY).map_err(|e| format!("fetch: {e}"))?;
    let mut child = Command::new(deploy)
        .arg(crate::cli::FETCH_COMMAND)
        .arg(&spawn.cwd)
        .envs(&spawn.env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fetch: cannot run bgrun-deploy: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("fetch: no answer from the remote within a minute".into());
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut said = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut said);
    }
    let line = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim_start_matches("error: ");
    Err(format!("fetch: {line}"))
}

/// In the job's process, between fork and exec: the listening sockets at 3, 4, … and
/// LISTEN_PID set to the job's pid. The shim is single-threaded, so the allocation `setenv`
/// may make is safe here.
fn pass_sockets(sockets: &[i32]) -> std::io::Result<()> {
    for (i, fd) in sockets.iter().enumerate() {
        // dup2 clears close-on-exec on the copy: the job keeps it.
        // SAFETY: plain descriptor calls on descriptors we own.
        if unsafe { libc::dup2(*fd, 3 + i as i32) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let mut pid = itoa::Buffer::new();
    let pid = std::ffi::CString::new(pid.format(std::process::id())).unwrap_or_default();
    // SAFETY: both arguments are NUL-terminated strings.
    unsafe { libc::setenv(c"LISTEN_PID".as_ptr(), pid.as_ptr(), 1) };
    Ok(())
}

/// Asks one run (not the whole job) to stop: its stop command, or its stop signal to its
/// session; what is left of the session gets SIGKILL after its grace (see `Supervision::retire`).
fn retire_run(session: Pid, spawn: &SpawnFile, signal: Signal, grace: Duration) -> Retiring {
    if !run_stop_command(spawn) {
        signal_session(session, signal);
    }
    Retiring { session, kill_at: Instant::now() + grace }
}

/// Signals one run's processes: its process group and the shim's descendants still in its
/// session (a process that started a session of its own cannot be told apart; the job's final
/// stop reaches it).
fn signal_session(session: Pid, sig: Signal) {
    let _ = kill(Pid::from_raw(-session.as_raw()), sig);
    for pid in procfs::descendants(std::process::id() as i32) {
        if procfs::session_of(pid) == Some(session.as_raw()) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// Runs the spec's stop command, if it has one (reaped with the job's other children; its output
/// goes to the daemon's log). False when there is none, or it could not be started: signal then.
fn run_stop_command(spawn: &SpawnFile) -> bool {
    let Some(command) = &spawn.stop.command else { return false };
    let mut stop = Command::new("sh");
    stop.arg("-c").arg(command).env_clear().envs(&spawn.env).current_dir(&spawn.cwd);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        stop.stdin(Stdio::null()).pre_exec(|| {
            unblock_signals();
            Ok(())
        });
    }
    match stop.spawn() {
        Ok(_) => true,
        Err(e) => {
            crate::warn!("bgrun shim: cannot run the stop command {command:?}: {e}; signalling instead");
            false
        }
    }
}

/// Why a new run cannot start beside the current one under this shim: what the shim itself set
/// up for the job (its terminal, its log, its sockets, what it watches) must stay as it is.
fn beside_refused(current: &SpawnFile, new: &SpawnFile) -> Option<&'static str> {
    if new.pty.is_some() || current.pty.is_some() {
        return Some("the job runs in a terminal");
    }
    if new.container.is_some() || current.container.is_some() {
        return Some("the job runs a container (its name is taken)");
    }
    if new.daemonizes || current.daemonizes {
        return Some("the job daemonizes");
    }
    if new.notify || current.notify {
        return Some("the job reports readiness with sd_notify");
    }
    let changed = |what| Some(what);
    if new.listen != current.listen {
        return changed("its listening sockets changed");
    }
    if new.log_limits != current.log_limits || new.mirror != current.mirror {
        return changed("its log settings changed");
    }
    None
}

/// The shim blocks signals to read them from a signalfd; what it starts must not inherit that.
/// Called between fork and exec: async-signal-safe calls only.
fn unblock_signals() {
    // SAFETY: sigemptyset and pthread_sigmask only touch the set on our stack.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
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
    /// The job directory's lock, held until the shim exits, with the shim's record in it.
    lock: files::ShimLock,
    stdin: JobStdin,
    /// The job's run: its spec, its first process, and the number its log entries carry.
    spawn: SpawnFile,
    stop_signal: Signal,
    child: Pid,
    run: u8,
    grace: Duration,
    leader: Option<WaitStatus>,
    stop_requested: bool,
    /// When everything still running in the job's tree gets SIGKILL.
    kill_at: Option<Instant>,
    /// Set by `reap` once no process of the job's tree is left.
    childless: bool,
    /// A job that daemonizes: its first process exited 0, and the process it left behind is
    /// looked for until then.
    awaiting_main: Option<Instant>,
    /// How many times the job's main process became one its predecessor left behind (a program
    /// that forks twice to daemonize takes two hops).
    hops: u32,
    /// A new run started beside the job's run, until it takes over or is stopped.
    next: Option<NextRun>,
    /// Runs that were replaced (or new runs that failed), being stopped.
    retiring: Vec<Retiring>,
    /// The daemon's last request about a new run, acted on already.
    request: Option<files::NextRequest>,
    /// The number the last run started got (see `NextRun::run`).
    last_run: u8,
}

/// A start-first replace: a new run of the job started beside the current one, by the same shim
/// (so the job's log keeps one writer and the listening sockets are at hand). Once the daemon
/// finds it ready it is promoted: it becomes the job's run and the old one is stopped as its spec
/// says. The runs are told apart by session (each run's first process starts one) and, in the
/// log, by their run numbers.
struct NextRun {
    /// Its name in the daemon's requests.
    id: files::NextId,
    child: Pid,
    run: u8,
    spawn: SpawnFile,
}

/// A run on its way out while the job goes on: its session gets its stop signal, then SIGKILL.
struct Retiring {
    session: Pid,
    kill_at: Instant,
}

impl Supervision<'_> {
    /// `grace`: what the daemon's stop request asked for (see `launch::request_stop`).
    fn on_signal(&mut self, signo: i32, grace: Option<Duration>) {
        match Signal::try_from(signo) {
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) if !self.stop_requested => {
                self.stop_requested = true;
                let grace = grace.unwrap_or(self.grace);
                self.ask_to_stop();
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
                Ok(status) if self.next.as_ref().is_some_and(|n| status.pid() == Some(n.child)) => {
                    self.next_exited(status)
                }
                Ok(_) => {}
            }
        }
        if leader_exited && self.may_follow() {
            self.awaiting_main = Some(Instant::now() + FOLLOW_PATIENCE);
            return;
        }
        if leader_exited {
            self.clean_up_after_leader();
        }
    }

    /// A new run's first process exited before it took over: the daemon learns how (it watches
    /// the process), and what it left goes.
    fn next_exited(&mut self, status: WaitStatus) {
        let Some(next) = &self.next else { return };
        let exit = exit_file(Some(status), false, crate::clock::unix_ms());
        if let Err(e) = files::write_next_exit(self.dir, next.id, &exit) {
            crate::warn!("bgrun shim: cannot record how the new run ended: {e}");
        }
        self.abort_next();
    }

    /// What the job left behind goes too, gently first, including processes that left its
    /// group (they are our children now). A stop already under way keeps its deadline; under
    /// kill-mode main, what the main process left after a stop only gets the final SIGKILL.
    fn clean_up_after_leader(&mut self) {
        if self.childless {
            return;
        }
        if !(self.stop_requested && self.spawn.stop.kill_mode == KillMode::Main) {
            self.signal_tree(self.stop_signal);
        }
        self.kill_at.get_or_insert(Instant::now() + self.grace);
    }

    /// A daemonizing job's first process exited 0 on its own: the job goes on in what it left.
    fn may_follow(&self) -> bool {
        self.spawn.daemonizes
            && self.hops < MAX_HOPS
            && !self.stop_requested
            && matches!(self.leader, Some(WaitStatus::Exited(_, 0)))
    }

    /// Looks for the process a daemonizing job left behind (its pidfile's, or the one child it
    /// left us as subreaper) and makes it the job's main process, recorded in the lock file for
    /// the daemon. Gives up at the deadline: the job has then ended, and anything left goes.
    fn follow_main(&mut self) {
        let Some(until) = self.awaiting_main else { return };
        if let Some(pid) = self.find_main() {
            self.child = pid;
            self.leader = None;
            self.hops += 1;
            self.awaiting_main = None;
            let start_time = procfs::start_time(pid.as_raw()).unwrap_or(0);
            if let Err(e) = self.lock.set_child(ChildFile { pid: pid.as_raw(), start_time }) {
                crate::warn!("bgrun shim: cannot record the daemonized process {pid}: {e}");
            }
        } else if Instant::now() >= until {
            self.awaiting_main = None;
            self.clean_up_after_leader();
        }
    }

    /// Only a live child of ours can be the job: a daemon is reparented to us (we are its
    /// subreaper), so a pidfile naming anything else (stale, reused, or another instance's) is
    /// never followed or signalled.
    fn find_main(&self) -> Option<Pid> {
        let me = std::process::id() as i32;
        let children: Vec<i32> =
            procfs::parents().into_iter().filter(|(_, parent)| *parent == me).map(|(pid, _)| pid).collect();
        let live = |pid: &i32| !procfs::is_zombie(*pid);
        if let Some(pidfile) = &self.spawn.pidfile {
            let pid: i32 = std::fs::read_to_string(self.spawn.cwd.join(pidfile)).ok()?.trim().parse().ok()?;
            return (children.contains(&pid) && live(&pid)).then(|| Pid::from_raw(pid));
        }
        // A daemon leads a session of its own; an intermediate process of a double fork does not.
        let mut live: Vec<i32> = children.into_iter().filter(live).collect();
        live.sort_unstable_by_key(|pid| (!procfs::leads_session(*pid), *pid));
        live.first().copied().map(Pid::from_raw)
    }

    /// The stop the job asked for: its stop command, or its stop signal to every process of the
    /// job (kill-mode group) or to its main process only (kill-mode main).
    fn ask_to_stop(&self) {
        if !run_stop_command(&self.spawn) {
            match self.spawn.stop.kill_mode {
                KillMode::Group => self.signal_tree(self.stop_signal),
                // The main process may be gone already (a daemonizing job between its first
                // process and its daemon): its pid may be another process's by now.
                KillMode::Main if self.leader.is_none() => {
                    let _ = kill(self.child, self.stop_signal);
                }
                KillMode::Main => {}
            }
        }
    }

    /// Starts the run `next.json` describes beside the job's run (replacing a new run still
    /// starting). Returns its process, its run number and its outputs.
    fn start_next(
        &mut self,
        id: files::NextId,
        listening: &[OwnedFd],
    ) -> Result<(ChildFile, u8, Outputs), files::NextStarted> {
        if self.next.is_some() {
            self.abort_next();
        }
        let error = |error| files::NextStarted::Error { error };
        let mut spawn = files::read_next_spawn(self.dir).map_err(|e| error(format!("cannot read next.json: {e}")))?;
        if let Some(what) = beside_refused(&self.spawn, &spawn) {
            return Err(files::NextStarted::Refused { refused: what.into() });
        }
        mark_run(&mut spawn);
        pass_listen_env(&mut spawn, listening.len());
        // Every run gets a number of its own (a new run aborted while it drains is not the next).
        let run = self.last_run.wrapping_add(1);
        self.last_run = run;
        let (child, outputs, _) = start_job(&self.stdin, &spawn, listening, run).map_err(error)?;
        let pid = Pid::from_raw(child.id() as i32);
        drop(child);
        if spawn.stop.command.is_none() {
            spawn.env = Default::default();
        }
        let start_time = procfs::start_time(pid.as_raw()).unwrap_or(0);
        self.next = Some(NextRun { id, child: pid, run, spawn });
        Ok((ChildFile { pid: pid.as_raw(), start_time }, run, outputs))
    }

    /// The new run takes over: it is the job's run from now on (recorded in the lock file and
    /// `spawn.json`), and the old one is asked to stop as its spec says.
    fn promote(&mut self, id: files::NextId) {
        let Some(next) = self.next.take_if(|n| n.id == id) else { return };
        let old = retire_run(self.child, &self.spawn, self.stop_signal, self.grace);
        self.retiring.push(old);
        self.child = next.child;
        self.run = next.run;
        self.stop_signal = stop_signal(&next.spawn);
        self.grace = Duration::from_millis(next.spawn.grace_ms);
        self.spawn = next.spawn;
        self.hops = 0;
        let start_time = procfs::start_time(self.child.as_raw()).unwrap_or(0);
        if let Err(e) = self.lock.set_child(ChildFile { pid: self.child.as_raw(), start_time }) {
            crate::warn!("bgrun shim: cannot record the new run's process: {e}");
        }
        if let Err(e) = files::promote_next_spawn(self.dir) {
            crate::warn!("bgrun shim: cannot record the new run's spec: {e}");
        }
    }

    /// The new run goes (it failed, or the daemon gave up on it); the job's run goes on.
    fn abort_next(&mut self) {
        if let Some(next) = self.next.take() {
            let grace = Duration::from_millis(next.spawn.grace_ms);
            self.retiring.push(retire_run(next.child, &next.spawn, stop_signal(&next.spawn), grace));
        }
    }

    /// SIGKILL to what is left of the runs whose grace is over.
    fn retire(&mut self) {
        let now = Instant::now();
        let (due, waiting): (Vec<Retiring>, Vec<Retiring>) = self.retiring.drain(..).partition(|r| now >= r.kill_at);
        self.retiring = waiting;
        for r in due {
            signal_session(r.session, Signal::SIGKILL);
        }
    }

    /// The next moment something must be killed: the job's stop, or a retiring run's.
    fn next_kill(&self) -> Option<Instant> {
        self.retiring.iter().map(|r| r.kill_at).chain(self.kill_at).min()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_sleeps_until_its_next_deadline() {
        let now = Instant::now();
        assert_eq!(next_wake(None, None, now), None);
        let kill = now + Duration::from_secs(3);
        assert_eq!(next_wake(Some(kill), None, now), Some(Duration::from_secs(3)));
        assert_eq!(next_wake(Some(kill), Some(now), now), Some(PARTIAL_LINE_DELAY));
        assert_eq!(next_wake(Some(now), Some(now), now + Duration::from_secs(1)), Some(Duration::ZERO));
    }

    #[test]
    fn the_exit_file_says_how_the_leader_ended() {
        let pid = Pid::from_raw(7);
        assert_eq!(exit_file(Some(WaitStatus::Exited(pid, 3)), false, 5).code, Some(3));
        let killed = exit_file(Some(WaitStatus::Signaled(pid, Signal::SIGTERM, false)), true, 5);
        assert_eq!((killed.code, killed.signal, killed.stopped), (None, Some(15), true));
        assert_eq!(exit_file(None, false, 5), ExitFile { code: None, signal: None, stopped: false, unix_ms: 5 });
    }
}
