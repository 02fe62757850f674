//! `bgrun up --watch`: converge again whenever the project file (or an env-file) is saved, and
//! restart a job when files matching its `watch` globs change. A save that does not load prints
//! its problems and leaves the last good state running.

use super::Output;
use super::project::FileArg;
use crate::error::Result;
use crate::home::Home;

pub fn run(_home: &Home, _file: &FileArg, _only: &[String], _out: &Output) -> Result<i32> {
    Err(crate::error::Error::new("--watch is not available yet"))
}
