//! What the daemon hands a shim it launches, on the launch socket (the shim's stdout, which its
//! handshake comes back on): the run's spec, as a length and JSON, before anything else. On the
//! socket rather than in a file: a file is one more inode to allocate for every run, and that is
//! most of what starting a job costs on some file systems (see `files::prepare_run`).

use super::files::SpawnFile;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A spec is a few KB; this bounds what a shim allocates for one (an environment of 16 MB is
/// far beyond what `execve` accepts anyway).
const MAX_SPEC: u32 = 16 << 20;
/// How long either side waits for the other: the shim reads its spec first thing, so only a
/// shim that is stuck (or a daemon gone) makes the wait run out.
const PATIENCE: Duration = Duration::from_secs(5);

/// Daemon side: sends `spawn` to the shim at the other end of `socket` (blocking, bounded).
pub fn send_spec(socket: &UnixStream, spawn: &SpawnFile) -> io::Result<()> {
    let json = serde_json::to_vec(spawn).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).ok().filter(|n| *n <= MAX_SPEC).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("the job's spec is too big ({} bytes)", json.len()))
    })?;
    let mut message = Vec::with_capacity(4 + json.len());
    message.extend_from_slice(&len.to_le_bytes());
    message.extend_from_slice(&json);
    socket.set_write_timeout(Some(PATIENCE))?;
    (&*socket).write_all(&message)
}

/// Shim side: the spec the daemon sent on descriptor 1 (see [`receive_spec`]).
pub fn receive_spec_at_launch() -> Result<SpawnFile, String> {
    // SAFETY: descriptor 1 is the socket the daemon launched us with, open until the handshake
    // replaces it; the ManuallyDrop keeps this borrowed stream from closing it.
    let launch = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(1) });
    receive_spec(&launch)
}

/// The spec sent by [`send_spec`]. Reads exactly its bytes, so the listening sockets that may
/// follow (see `sockets::receive_at_launch`) stay to be received.
fn receive_spec(launch: &UnixStream) -> Result<SpawnFile, String> {
    // A shim started by hand has no socket there: that fails at once rather than hangs.
    let fail = |e: io::Error| format!("the job's spec did not come: {e}");
    launch.set_read_timeout(Some(PATIENCE)).map_err(fail)?;
    let mut len = [0u8; 4];
    (&*launch).read_exact(&mut len).map_err(fail)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_SPEC {
        return Err(format!("the job's spec is too big ({len} bytes)"));
    }
    let mut json = vec![0u8; len as usize];
    (&*launch).read_exact(&mut json).map_err(fail)?;
    serde_json::from_slice(&json).map_err(|e| format!("the job's spec is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn spec(env_bytes: usize) -> SpawnFile {
        serde_json::from_value(serde_json::json!({
            "label": "web", "argv": ["sleep", "1"], "cwd": "/", "grace_ms": 100,
            "env": { "BIG": "x".repeat(env_bytes) },
        }))
        .unwrap()
    }

    /// A spec far bigger than the socket's buffer (the daemon's write waits for the shim's
    /// reads), followed by descriptors: the spec reads back whole and the descriptors still come.
    #[test]
    fn a_big_spec_then_sockets_arrive_whole_and_in_order() {
        let (daemon, shim) = UnixStream::pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sent = spec(1 << 20);
        let reader = std::thread::spawn(move || {
            let got = receive_spec(&shim).unwrap();
            let fds = super::super::sockets::recv_fds(shim.as_fd()).unwrap();
            (got, fds.len())
        });
        send_spec(&daemon, &sent).unwrap();
        super::super::sockets::send_fds(daemon.as_fd(), &[listener.as_fd()]).unwrap();
        let (got, fds) = reader.join().unwrap();
        assert_eq!(got.env["BIG"].len(), 1 << 20);
        assert_eq!(got.argv, sent.argv);
        assert_eq!(fds, 1);
    }

    #[test]
    fn a_cut_or_oversized_spec_is_a_clear_error() {
        let (daemon, shim) = UnixStream::pair().unwrap();
        (&daemon).write_all(&[10, 0, 0, 0, b'{']).unwrap();
        drop(daemon);
        assert!(receive_spec(&shim).unwrap_err().contains("did not come"));
        let (daemon, shim) = UnixStream::pair().unwrap();
        (&daemon).write_all(&u32::MAX.to_le_bytes()).unwrap();
        assert!(receive_spec(&shim).unwrap_err().contains("too big"));
    }
}
