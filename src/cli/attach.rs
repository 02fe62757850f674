//! `bgrun attach`: the job's terminal on yours. Keystrokes go to the job, its output comes back
//! live (bytes end to end), your window size follows; Ctrl+C detaches (the job keeps running), or
//! the `--detach-keys` sequence does and Ctrl+C goes to the job; the connection closes by itself
//! when the job exits.

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
    /// Detach with this key sequence instead of Ctrl+C, which then reaches the job: keys
    /// separated by commas, each a character or ctrl-<key> (docker's form: `ctrl-]`, `ctrl-p,ctrl-q`).
    #[arg(long, value_parser = parse_detach_keys)]
    pub detach_keys: Option<DetachKeys>,
}

/// The bytes of a detach sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

const CTRL_C: u8 = 0x03;

/// `ctrl-p,ctrl-q` as the bytes a terminal sends for it.
fn parse_detach_keys(s: &str) -> std::result::Result<DetachKeys, String> {
    let keys: std::result::Result<Vec<u8>, String> = s
        .split(',')
        .map(|key| match key.strip_prefix("ctrl-").map(|k| k.as_bytes()) {
            Some([c]) if matches!(c.to_ascii_uppercase(), b'@'..=b'_') => Ok(c.to_ascii_uppercase() - b'@'),
            Some(_) => Err(format!(
                "{key:?} is not a key; use ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_"
            )),
            None if key.len() == 1 => Ok(key.as_bytes()[0]),
            None => Err(format!("{key:?} is not a key; give one character or ctrl-<key>")),
        })
        .collect();
    keys.map(DetachKeys)
}

/// Watches typed bytes for the detach sequence. Bytes that may begin it are held back until it
/// is complete (detach) or broken (they go to the job after all).
struct Detacher {
    keys: Vec<u8>,
    matched: usize,
}

impl Detacher {
    /// What of `input` goes to the job, and whether the sequence was typed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            // The held bytes and this one: the longest end of them that still begins the sequence
            // stays held (`ctrl-p ctrl-p ctrl-q` after a stray `ctrl-p`); the rest goes through.
            let mut held = self.keys[..self.matched].to_vec();
            held.push(b);
            let keep = (0..=held.len()).rev().find(|&n| self.keys.starts_with(&held[held.len() - n..])).unwrap_or(0);
            out.extend_from_slice(&held[..held.len() - keep]);
            self.matched = keep;
            if self.matched == self.keys.len() {
                return (out, true);
            }
        }
        (out, false)
    }
}

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
                let _ = stdout.write_all(&data);
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
    let keys = args.detach_keys.clone().map_or_else(|| vec![CTRL_C], |k| k.0);
    let mut detacher = Detacher { keys, matched: 0 };
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
            let (input, detach) = detacher.feed(&buf[..n]);
            if !input.is_empty() {
                client.send(Request::AttachInput { data: input })?;
            }
            if n == 0 || detach {
                why = Some(format!("detached from {}; it keeps running", args.id));
                break;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_parsed_and_held_back_until_broken() {
        assert_eq!(parse_detach_keys("ctrl-]"), Ok(DetachKeys(vec![0x1d])));
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q"), Ok(DetachKeys(vec![0x10, 0x11])));
        assert!(parse_detach_keys("ctrl-pq").is_err());
        let mut d = Detacher { keys: vec![0x10, 0x11], matched: 0 };
        assert_eq!(d.feed(&[b'a', 0x03, 0x10]), (vec![b'a', 0x03], false));
        // The held ctrl-p goes to the job once the sequence is broken.
        assert_eq!(d.feed(b"x"), (vec![0x10, b'x'], false));
        assert_eq!(d.feed(&[0x10]), (vec![], false));
        assert_eq!(d.feed(&[0x11, b'z']), (vec![], true));
        // A repeated key: a stray first one goes through, the sequence still detaches.
        let mut d = Detacher { keys: vec![0x10, 0x10, 0x11], matched: 0 };
        assert_eq!(d.feed(&[0x10, 0x10, 0x10, 0x11]), (vec![0x10], true));
    }
}
