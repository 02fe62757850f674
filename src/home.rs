//! The state directory. Everything bgrun writes by default lives under `$BGRUN_HOME` (default
//! `~/.bgrun`), so two homes are two fully independent bgruns.

use crate::error::{Error, ErrorKind, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Unix socket paths are limited to 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn from_env() -> Result<Home> {
        let root = match std::env::var_os("BGRUN_HOME") {
            // Set but empty is a mistake (an unset variable in a script), not a wish for the default.
            Some(dir) if dir.is_empty() => {
                return Err(Error::bad_input("BGRUN_HOME is set but empty")
                    .with_hint("unset it to use ~/.bgrun, or give it a directory"));
            }
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = std::env::var_os("HOME").ok_or_else(|| Error::new("neither BGRUN_HOME nor HOME is set"))?;
                PathBuf::from(home).join(".bgrun")
            }
        };
        Home::at(root)
    }

    pub fn at(root: PathBuf) -> Result<Home> {
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir().map_err(|e| Error::context("current directory", e))?.join(root)
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| Error::context(format!("cannot create {}", root.display()), e))?;
        // Job output, specs with their environment and the control socket live here: a directory
        // someone else owns or can write to could be turned against its user, so it is refused.
        check_private(&root, true)?;
        // The control socket lives here; keep other users out even if the directory pre-existed.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::context(format!("cannot secure {}", root.display()), e))?;
        let jobs = root.join("jobs");
        match std::fs::DirBuilder::new().mode(0o700).create(&jobs) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::context(format!("cannot create {}", jobs.display()), e)),
        }
        check_private(&jobs, false)?;
        let home = Home { root };
        if home.socket().as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::new(format!("BGRUN_HOME path is too long for a unix socket: {}", home.root.display()))
                .with_hint("use a BGRUN_HOME shorter than about 90 characters"));
        }
        Ok(home)
    }

    /// Opens a file of the state directory for appending, creating it private to its owner, and
    /// never through a symbolic link planted in its place.
    pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }

    /// Takes an exclusive lock on `path` (created private to its owner, never through a link
    /// planted in its place), or None when another process holds it. The kernel releases the
    /// lock once every descriptor of the file is closed, including copies a child inherited, so
    /// "lock held" means "its holder is alive".
    pub fn try_lock(path: &Path) -> std::io::Result<Option<std::fs::File>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        // SAFETY: flock takes a descriptor we own and plain integer flags.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(file));
        }
        match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            e => Err(e),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("daemon.sock")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("state.db")
    }
    /// The boot the last daemon of this home ran in (the kernel's boot id).
    pub fn boot_id(&self) -> PathBuf {
        self.root.join("boot_id")
    }

    /// True when the last daemon of this home ran in another boot of the machine: the processes
    /// it supervised are gone, not crashed. Records this boot for the next daemon.
    pub fn rebooted(&self) -> bool {
        let now = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let last = std::fs::read_to_string(self.boot_id()).ok();
        if last.as_deref() != Some(now.as_str()) {
            let _ = std::fs::write(self.boot_id(), &now);
        }
        last.is_some_and(|last| last.trim() != now.trim())
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }
}

/// Refuses a directory that is not the caller's alone: owned by another user, writable by group
/// or others, or (below the root, which may itself be a link the user made) a symbolic link.
fn check_private(dir: &Path, follow: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = if follow { std::fs::metadata(dir) } else { std::fs::symlink_metadata(dir) }
        .map_err(|e| Error::context(format!("cannot read {}", dir.display()), e))?;
    let unsafe_dir = |why: String| {
        Err(Error::of(ErrorKind::System, format!("refusing to use {}: {why}", dir.display()))
            .with_hint("BGRUN_HOME must be a directory of your own that nobody else can write to"))
    };
    if meta.file_type().is_symlink() {
        return unsafe_dir("it is a symbolic link".into());
    }
    if !meta.is_dir() {
        return unsafe_dir("it is not a directory".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return unsafe_dir(format!("it belongs to user {}, not to you ({me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return unsafe_dir(format!("others can write to it (mode {:o})", meta.mode() & 0o777));
    }
    Ok(())
}
