//! `bgrun attach`: the job's terminal on yours. Keystrokes go to the job, its output comes back
//! live, your window size follows; Ctrl+C detaches (the job keeps running), and the connection
//! closes by itself when the job exits.

use super::Output;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::{Request, Response};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: String,
}

const CTRL_C: u8 = 0x03;

/// Puts the terminal back as it was, however attach ends.
struct RawMode(Termios);

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}

fn window_size() -> (u16, u16) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the pointer.
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 { (ws.ws_col, ws.ws_row) } else { (80, 24) }
}

pub fn exec(args: Args, client: &mut Client, _out: &Output) -> Result<i32> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::new("attach needs a terminal").with_hint("use `bgrun send` and `bgrun screen` from scripts"));
    }
    let (cols, rows) = window_size();
    client.send(Request::Attach { job: args.id.clone(), cols, rows })?;
    // The first answer is the screen, or why attaching is not possible.
    let first = client.receive()?;
    let saved = termios::tcgetattr(std::io::stdin()).map_err(|e| Error::context("terminal", e))?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw).map_err(|e| Error::context("terminal", e))?;
    let _restore = RawMode(saved);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGWINCH);
    mask.thread_block().map_err(|e| Error::context("signals", e))?;
    let winch = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK).map_err(|e| Error::context("signals", e))?;
    let mut stdout = std::io::stdout().lock();
    let show = |resp: Response, stdout: &mut std::io::StdoutLock| -> Option<String> {
        match resp {
            Response::Output { data } => {
                let _ = stdout.write_all(data.as_bytes());
                let _ = stdout.flush();
                None
            }
            Response::End { .. } => Some("the job has exited".into()),
            other => Some(crate::client::unexpected(&other).message),
        }
    };
    let mut why = show(first, &mut stdout);
    let socket = client.stream().try_clone().map_err(|e| Error::context("socket", e))?;
    let mut buf = [0u8; 4096];
    while why.is_none() {
        let ready = {
            let stdin = std::io::stdin();
            let mut fds = [
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                PollFd::new(socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(winch.as_fd(), PollFlags::POLLIN),
            ];
            poll(&mut fds, PollTimeout::NONE).map_err(|e| Error::context("poll", e))?;
            fds.map(|f| f.any().unwrap_or(false))
        };
        if ready[0] {
            let n = std::io::stdin().read(&mut buf).map_err(|e| Error::context("terminal", e))?;
            let input = &buf[..n];
            if n == 0 || input.contains(&CTRL_C) {
                let before = &input[..input.iter().position(|b| *b == CTRL_C).unwrap_or(n)];
                if !before.is_empty() {
                    client.send(Request::AttachInput { data: String::from_utf8_lossy(before).into_owned() })?;
                }
                why = Some(format!("detached from {}; it keeps running", args.id));
                break;
            }
            client.send(Request::AttachInput { data: String::from_utf8_lossy(input).into_owned() })?;
        }
        if ready[1] {
            why = show(client.receive()?, &mut stdout);
        }
        if ready[2] {
            while let Ok(Some(_)) = winch.read_signal() {}
            let (cols, rows) = window_size();
            client.send(Request::AttachResize { cols, rows })?;
        }
    }
    drop(_restore);
    crate::warn!("\r\n[{}]", why.unwrap_or_default());
    Ok(0)
}
