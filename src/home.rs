//! The state directory. Everything bgrun writes by default lives under `$BGRUN_HOME` (default
//! `~/.bgrun`), so two homes are two fully independent bgruns.

use crate::error::{Error, Result};
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
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
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
            .create(root.join("jobs"))
            .map_err(|e| Error::context(format!("cannot create {}", root.display()), e))?;
        // The control socket lives here; keep other users out even if the directory pre-existed.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::context(format!("cannot secure {}", root.display()), e))?;
        let home = Home { root };
        if home.socket().as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::new(format!("BGRUN_HOME path is too long for a unix socket: {}", home.root.display()))
                .with_hint("use a BGRUN_HOME shorter than about 90 characters"));
        }
        Ok(home)
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
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }
}
