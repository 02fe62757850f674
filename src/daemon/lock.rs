//! The single-instance lock. A pid file alone can be stale or raced; an flock is released by the
//! kernel the instant its holder dies, so "lock held" means "daemon alive".

use crate::error::{Error, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Takes the lock, or returns None when another daemon holds it.
pub fn acquire(path: &Path) -> Result<Option<Flock<File>>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        // A link planted in its place must not make us truncate whatever it points to.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::context(format!("cannot open {}", path.display()), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = writeln!(&mut *lock, "{}", std::process::id());
            Ok(Some(lock))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::context(format!("cannot lock {}", path.display()), e)),
    }
}
