//! The single-instance lock. A pid file alone can be stale or raced; an flock is released by the
//! kernel the instant its holder dies, so "lock held" means "daemon alive".

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Takes the lock, or returns None when another daemon holds it. Held until the file is dropped.
pub fn acquire(path: &Path) -> Result<Option<File>> {
    // A link planted in its place must not make us truncate whatever it points to.
    let lock =
        crate::home::Home::try_lock(path).map_err(|e| Error::context(format!("cannot lock {}", path.display()), e))?;
    Ok(lock.map(|mut file| {
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        file
    }))
}
