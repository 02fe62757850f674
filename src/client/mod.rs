//! Talking to the daemon: connect (starting it if needed), send a request, read the answer.
//! Blocking std I/O: a CLI call makes one round trip, and a runtime would only cost start-up time.
//!
//! [`Client`] is bgrun's library API: what the CLI and the dashboard use, and what a Rust program
//! driving bgrun uses. Each method sends one typed request and returns its typed answer; a failure
//! is an [`Error`] whose [`ErrorKind`] says what kind (no such job, bad input, daemon unreachable…).
//!
//! ```no_run
//! use bgrun::client::Client;
//! use bgrun::protocol::{KillTarget, TailRequest};
//!
//! let home = bgrun::home::Home::from_env()?; // $BGRUN_HOME, or ~/.bgrun
//! let mut client = Client::connect(&home)?; // starts the daemon if none is running
//! let spec = bgrun::cli::run::spec(["--name", "web", "--ready-when-port", "8000", "--", "python3", "-m", "http.server"])?;
//! let job = client.run(spec)?;
//! let ready = client.wait(job.id.clone(), 10_000)?;
//! println!("{} is {}", job.display_name(), if ready.ready { "ready" } else { "not ready" });
//! for line in client.tail(TailRequest::last("web", 5))? {
//!     println!("{}", line.content);
//! }
//! client.kill(KillTarget::Job("web".into()), None)?;
//! # Ok::<(), bgrun::error::Error>(())
//! ```

mod api;
pub use api::jobs_in;

pub use api::unexpected;

use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use crate::protocol::{self, Request, RequestFrame, Response, ResponseFrame, VERSION};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a CLI call waits for a daemon it started to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    stream: UnixStream,
    /// The daemon's log, named when it does not answer.
    daemon_log: std::path::PathBuf,
    /// How long the answer to the last request may take (None: a stream that ends when the
    /// daemon ends it).
    deadline: Option<Duration>,
}

/// Overrides every request's deadline, e.g. `BGRUN_TIMEOUT=5m`.
pub const TIMEOUT_ENV: &str = "BGRUN_TIMEOUT";

/// How long the CLI waits for the answer to `request` before it says the daemon is not answering:
/// generous, from what the request itself may wait for.
pub fn deadline(request: &Request) -> Option<Duration> {
    const QUICK: Duration = Duration::from_secs(30);
    const MARGIN: Duration = Duration::from_secs(30);
    let from_env = std::env::var(TIMEOUT_ENV).ok().and_then(|t| crate::spec::parse_duration(&t).ok());
    let natural = match request {
        // Streams: they end when the job ends or the client leaves.
        Request::Tail(t) if t.follow => return None,
        Request::Watch { .. } => return None,
        Request::Attach { .. } | Request::AttachInput { .. } | Request::AttachResize { .. } => return None,
        Request::Wait { timeout_ms, .. } | Request::Expect { timeout_ms, .. } => {
            Duration::from_millis(*timeout_ms) + MARGIN
        }
        // A stop may take the job's whole grace, which the client does not know: be generous.
        Request::Kill { grace_ms: Some(g), .. } => Duration::from_millis(*g) * 2 + MARGIN,
        Request::Kill { .. } | Request::Down { .. } | Request::Restart { .. } | Request::Delete { .. } => {
            Duration::from_secs(600)
        }
        // Every job's readiness, one after the other along the dependencies.
        Request::Up(_) => Duration::from_secs(1800),
        _ => QUICK,
    };
    Some(from_env.unwrap_or(natural))
}

impl Client {
    /// Connects to the daemon of `home`, starting one if none is running.
    pub fn connect(home: &Home) -> Result<Client> {
        if let Some(client) = Client::connect_running(home)? {
            return Ok(client);
        }
        start_daemon(home)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(client) = Client::connect_running(home)? {
                return Ok(client);
            }
            if Instant::now() >= deadline {
                return Err(daemon_failed(home));
            }
            // Only reached when another CLI won the race to start the daemon and it is still
            // binding its socket.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Connects to a running daemon; None when there is none.
    pub fn connect_running(home: &Home) -> Result<Option<Client>> {
        match UnixStream::connect(home.socket()) {
            Ok(stream) => {
                check_peer(&stream, home)?;
                Ok(Some(Client { stream, daemon_log: home.daemon_log(), deadline: None }))
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                Ok(None)
            }
            Err(e) => Err(unreachable(format!("cannot reach the daemon at {}: {e}", home.socket().display()))),
        }
    }

    /// The connection itself, for a caller that multiplexes it with other input (attach).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends a request and returns its answer; an error answer becomes an `Err`.
    pub fn call(&mut self, request: Request) -> Result<Response> {
        self.send(request)?;
        self.receive()
    }

    pub fn send(&mut self, request: Request) -> Result<()> {
        self.deadline = deadline(&request);
        let bytes =
            serde_json::to_vec(&RequestFrame { v: VERSION, request }).map_err(|e| Error::context("encode", e))?;
        let _ = self.stream.set_write_timeout(self.deadline);
        let _ = self.stream.set_read_timeout(self.deadline);
        protocol::write_frame(&mut self.stream, &bytes).map_err(|e| self.lost(e))
    }

    pub fn receive(&mut self) -> Result<Response> {
        let bytes = self.receive_frame()?;
        decode(&bytes)
    }

    /// The next answer's bytes, not yet decoded.
    pub(crate) fn receive_frame(&mut self) -> Result<Vec<u8>> {
        protocol::read_frame(&mut self.stream)
            .map_err(|e| self.lost(e))?
            .ok_or_else(|| unreachable("the daemon closed the connection without answering"))
    }
}

/// An answer's bytes as a [`Response`]; an error answer becomes an `Err`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Response> {
    let frame: ResponseFrame =
        serde_json::from_slice(bytes).map_err(|e| Error::context("unreadable answer from the daemon", e))?;
    match frame.response {
        Response::Error { message, hint, kind } => Err(Error { kind, message, hint }),
        other => Ok(other),
    }
}

impl Client {
    /// What a failed read or write of the connection means for the person waiting.
    fn lost(&self, e: std::io::Error) -> Error {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            let waited =
                self.deadline.map_or_else(String::new, |d| format!(" within {}", humantime::format_duration(d)));
            let message = format!("the daemon is not answering (no answer{waited})");
            return Error::of(ErrorKind::Timeout, message).with_hint(format!(
                "see what it is doing in {}; `bgrun daemon stop` restarts it (jobs keep running); \
                 {TIMEOUT_ENV}=10m waits longer",
                self.daemon_log.display()
            ));
        }
        unreachable(format!("lost the daemon: {e}"))
    }
}

fn unreachable(message: impl Into<String>) -> Error {
    Error::of(ErrorKind::Unreachable, message)
}

/// Refuses a socket served by another user: the request that follows may carry the caller's
/// whole environment, secrets included.
fn check_peer(stream: &UnixStream, home: &Home) -> Result<()> {
    let me = nix::unistd::geteuid();
    match nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials) {
        Ok(cred) if cred.uid() == me.as_raw() => Ok(()),
        Ok(cred) => Err(Error::of(
            ErrorKind::System,
            format!("the daemon socket {} is served by user {}, not by you", home.socket().display(), cred.uid()),
        )
        .with_hint("use a BGRUN_HOME of your own")),
        Err(e) => Err(Error::context("cannot check who serves the daemon socket", e)),
    }
}

/// Starts a daemon in its own session and waits until it says it is listening (or exits
/// because another daemon won the race for the lock).
fn start_daemon(home: &Home) -> Result<()> {
    // Beside this program; a program using bgrun as a library finds it on the PATH.
    let exe = crate::programs::beside(crate::programs::DAEMON)
        .ok()
        .filter(|path| path.is_file())
        .unwrap_or_else(|| crate::programs::DAEMON.into());
    let log = Home::open_private(&home.daemon_log())
        .map_err(|e| Error::context(format!("cannot open {}", home.daemon_log().display()), e))?;
    let log_err = log.try_clone().map_err(|e| Error::context("daemon log", e))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::context("pipe", e))?;
    let ready_raw = ready_w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.env("BGRUN_HOME", home.root())
        .env(crate::daemon::READY_FD_ENV, "3")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // dup2 onto the same fd keeps CLOEXEC, so clear it explicitly in that case.
            if ready_raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else {
                libc::dup2(ready_raw, 3);
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        Error::context(format!("cannot start the daemon ({})", crate::programs::DAEMON), e)
            .with_hint(crate::programs::install_hint(crate::programs::DAEMON))
    })?;
    drop(cmd);
    drop(ready_w);
    // "ok" when it listens; end of file when it exits (lost the race, or failed: the caller
    // then tries to connect and reports the daemon log if that fails too).
    let mut fds = [nix::poll::PollFd::new(ready_r.as_fd(), nix::poll::PollFlags::POLLIN)];
    let timeout =
        nix::poll::PollTimeout::try_from(START_TIMEOUT.as_millis() as i32).unwrap_or(nix::poll::PollTimeout::MAX);
    if nix::poll::poll(&mut fds, timeout).is_ok_and(|n| n > 0) {
        let mut buf = [0u8; 3];
        let _ = std::fs::File::from(ready_r).read(&mut buf);
    }
    Ok(())
}

fn daemon_failed(home: &Home) -> Error {
    let log = std::fs::read_to_string(home.daemon_log()).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let mut e = unreachable("the daemon did not start");
    if !tail.is_empty() {
        e.message.push_str(": ");
        e.message.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
    }
    e.with_hint(format!("see {}", home.daemon_log().display()))
}
