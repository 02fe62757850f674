//! Listening sockets handed to jobs (`listen`), systemd's socket activation protocol. The daemon
//! binds them once; each shim gets them with its launch (SCM_RIGHTS over its handshake socket),
//! keeps them for its run, and hands them back to a daemon that restarts while the run goes on
//! (over `listen.sock` in the job's directory). So a socket outlives every run and every daemon,
//! and a restart or replacement refuses no connection: the kernel queues them meanwhile.

use crate::spec::ListenAddress;
use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    UnixAddr, bind, listen, recvmsg, sendmsg, setsockopt, socket, sockopt,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

/// The socket in a job's directory on which its shim hands its listening sockets back.
pub const HANDBACK: &str = "listen.sock";

/// At most this many sockets per job (what one message carries easily).
pub const MAX: usize = 32;

/// Binds and listens on `address` (close-on-exec, SO_REUSEADDR, the system's largest backlog).
pub fn bind_listener(address: &str) -> io::Result<OwnedFd> {
    let flags = SockFlag::SOCK_CLOEXEC;
    let parsed = ListenAddress::parse(address).map_err(io::Error::other)?;
    let fd = match parsed {
        ListenAddress::Tcp(addr) => {
            let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
            let fd = socket(family, SockType::Stream, flags, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            match addr {
                std::net::SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a))?,
                std::net::SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a))?,
            }
            fd
        }
        ListenAddress::Unix(path) => {
            remove_stale(&path)?;
            let fd = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
            bind(fd.as_raw_fd(), &UnixAddr::new(&path)?)?;
            fd
        }
    };
    listen(&fd, Backlog::MAXCONN)?;
    Ok(fd)
}

/// A socket file nobody listens on any more (left by an earlier bgrun) is removed; one that
/// answers belongs to someone else and is left alone (the bind then fails: address in use).
fn remove_stale(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if meta.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_err() {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// Sends `fds` over a connected unix socket, with one byte of data.
pub fn send_fds(socket: BorrowedFd, fds: &[BorrowedFd]) -> io::Result<()> {
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(b"L")], &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives up to [`MAX`] descriptors sent by [`send_fds`] (close-on-exec).
pub fn recv_fds(socket: BorrowedFd) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; MAX]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors for us; nothing else owns them.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    if msg.bytes == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no sockets came"));
    }
    Ok(fds)
}

/// The sockets a live shim of the job in `dir` holds, asked for over its hand-back socket.
pub fn fetch(dir: &Path) -> io::Result<Vec<OwnedFd>> {
    let stream = std::os::unix::net::UnixStream::connect(dir.join(HANDBACK))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    recv_fds(std::os::fd::AsFd::as_fd(&stream))
}

/// The shim's side: the sockets that came with its launch (on its stdout, the handshake socket),
/// moved above the descriptors the job gets them on (3 ..= 2 + n), so placing them there in the
/// job never overwrites one still to be placed.
pub fn receive_at_launch(count: usize) -> Result<Vec<OwnedFd>, String> {
    // SAFETY: descriptor 1 is the socket the daemon launched us with, open for our whole life
    // until the handshake replaces it.
    let launch = unsafe { BorrowedFd::borrow_raw(1) };
    let wait = nix::sys::time::TimeVal::new(5, 0);
    setsockopt(&launch, sockopt::ReceiveTimeout, &wait).map_err(|e| format!("the sockets to listen on: {e}"))?;
    let fds = recv_fds(launch).map_err(|e| format!("the sockets to listen on did not come: {e}"))?;
    if fds.len() != count {
        return Err(format!("{} sockets to listen on came, {count} expected", fds.len()));
    }
    let above = 3 + count as i32;
    fds.iter()
        .map(|fd| {
            let dup = nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(above);
            // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that nothing else owns.
            nix::fcntl::fcntl(fd, dup).map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the sockets to listen on: {e}"))
}

/// The shim's hand-back socket: a daemon started while the job runs connects and is sent the
/// sockets. Absent when it cannot be made (a job directory path too long for a unix socket):
/// the next daemon then binds anew.
pub fn hand_back_listener(dir: &Path) -> Option<std::os::unix::net::UnixListener> {
    let path = dir.join(HANDBACK);
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).ok()?;
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}

/// Answers every daemon waiting on the hand-back socket with the sockets.
pub fn hand_back(listener: &std::os::unix::net::UnixListener, sockets: &[OwnedFd]) {
    while let Ok((stream, _)) = listener.accept() {
        let fds: Vec<BorrowedFd> = sockets.iter().map(std::os::fd::AsFd::as_fd).collect();
        let _ = send_fds(std::os::fd::AsFd::as_fd(&stream), &fds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_sent_is_the_same_socket_received() {
        let listener = bind_listener("127.0.0.1:0").unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        send_fds(a.as_fd(), &[listener.as_fd()]).unwrap();
        let got = recv_fds(b.as_fd()).unwrap();
        assert_eq!(got.len(), 1);
        let local = |fd: &OwnedFd| nix::sys::socket::getsockname::<SockaddrIn>(fd.as_raw_fd()).unwrap();
        assert_eq!(local(&got[0]), local(&listener), "one socket, two descriptors");
        let port = local(&listener).port();
        // A connection made now waits in the queue of the socket whoever holds it.
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        drop(listener);
        let accepted = nix::sys::socket::accept(got[0].as_raw_fd());
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    #[test]
    fn a_stale_unix_socket_is_replaced_and_a_live_one_is_not() {
        let dir = std::env::temp_dir().join(format!("bgrun-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.sock");
        let address = format!("unix:{}", path.display());
        let first = bind_listener(&address).unwrap();
        assert!(bind_listener(&address).is_err(), "someone listens there");
        drop(first);
        assert!(bind_listener(&address).is_ok(), "the file of a closed socket is stale");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
