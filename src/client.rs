//! Talking to the daemon: connect (starting it if needed), send a request, read the answer.
//! Blocking std I/O: a CLI call makes one round trip, and a runtime would only cost start-up time.

use crate::error::{Error, Result};
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
            Ok(stream) => Ok(Some(Client { stream })),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                Ok(None)
            }
            Err(e) => Err(Error::context(format!("cannot reach the daemon at {}", home.socket().display()), e)),
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
        let bytes =
            serde_json::to_vec(&RequestFrame { v: VERSION, request }).map_err(|e| Error::context("encode", e))?;
        protocol::write_frame(&mut self.stream, &bytes).map_err(|e| Error::context("lost the daemon", e))
    }

    pub fn receive(&mut self) -> Result<Response> {
        let bytes = protocol::read_frame(&mut self.stream)
            .map_err(|e| Error::context("lost the daemon", e))?
            .ok_or_else(|| Error::new("the daemon closed the connection without answering"))?;
        let frame: ResponseFrame =
            serde_json::from_slice(&bytes).map_err(|e| Error::context("unreadable answer from the daemon", e))?;
        match frame.response {
            Response::Error { message, hint } => Err(Error { message, hint }),
            other => Ok(other),
        }
    }
}

/// Starts a daemon in its own session and waits until it says it is listening (or exits
/// because another daemon won the race for the lock).
fn start_daemon(home: &Home) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::context("cannot find the bgrun binary", e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.daemon_log())
        .map_err(|e| Error::context(format!("cannot open {}", home.daemon_log().display()), e))?;
    let log_err = log.try_clone().map_err(|e| Error::context("daemon log", e))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::context("pipe", e))?;
    let ready_raw = ready_w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("__daemon")
        .env("BGRUN_HOME", home.root())
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
    cmd.spawn().map_err(|e| Error::context("cannot start the daemon", e))?;
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
    let mut e = Error::new("the daemon did not start");
    if !tail.is_empty() {
        e.message.push_str(": ");
        e.message.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
    }
    e.with_hint(format!("see {}", home.daemon_log().display()))
}
