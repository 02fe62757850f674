//! Finding and loading the project file for `up`, `down`, `plan` and `run-group`. A file with
//! problems is reported here, every problem at once, and nothing is sent to the daemon.

use super::Output;
use crate::error::{Error, Result};
use crate::project::load::{self, Project};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `-f/--file`, shared by the project commands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FileArg {
    /// The project file (default: bgrun.toml in this directory or the nearest parent).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Lay this named environment over the jobs' (`[environments.NAME]` and
    /// `[jobs.<job>.environments.NAME]` in the file).
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<String>,
}

impl FileArg {
    pub fn path(&self) -> Result<PathBuf> {
        let here = std::env::current_dir().map_err(|e| Error::context("current directory", e))?;
        match &self.file {
            Some(f) => Ok(here.join(f)),
            None => load::find(&here).ok_or_else(|| {
                Error::new(format!("no {} in {} or its parents", crate::project::FILE_NAME, here.display()))
                    .with_hint("create one (see bgrun.toml.example), or pass -f FILE")
            }),
        }
    }

    /// How the file is loaded: with the caller's environment and the chosen named environment.
    pub fn options(&self) -> load::Options {
        load::Options { inherited: inherited_env(), environment: self.environment.clone() }
    }

    /// The project and the jobs named on the command line, or None after the file's problems
    /// were printed. Each name must be a job of the file (all of them are meant when none is
    /// given); a job with replicas names all its copies.
    pub fn load(&self, out: &Output, names: &[String]) -> Result<Option<(Project, Vec<String>)>> {
        let path = self.path()?;
        match load::load(&path, &self.options()) {
            Ok(p) => select(&p, names).map(|only| Some((p, only))),
            Err(problems) => {
                print_problems(&problems, out);
                Ok(None)
            }
        }
    }
}

/// A file's problems on stderr: a miette report for a person, JSON for a program.
pub fn print_problems(problems: &crate::project::diag::Problems, out: &Output) {
    if out.json {
        crate::warn!("{}", serde_json::json!({ "problems": problems.views() }));
    } else {
        crate::warn!("{:?}", problems.report());
    }
}

/// What an import or an export left out, on stderr: `<tag>: <line>` each for a person, JSON
/// lines (`{"<tag_json>": item}`) for a program. Under `--strict` any is an error, and the exit
/// code to return is given (`what` says of what: "key(s) could not be imported").
pub fn left_out<T: serde::Serialize>(
    items: &[T],
    (tag, tag_json): (&str, &str),
    line: impl Fn(&T) -> String,
    strict: bool,
    what: &str,
) -> Option<i32> {
    use std::io::IsTerminal;
    let json = !std::io::stderr().is_terminal();
    for item in items {
        if json {
            crate::warn!("{}", serde_json::json!({ tag_json: item }));
        } else {
            crate::warn!("{tag}: {}", line(item));
        }
    }
    if strict && !items.is_empty() {
        crate::warn!("error: --strict: {} {what}; nothing was written", items.len());
        return Some(1);
    }
    None
}

/// The environment file jobs start from: the caller's.
pub fn inherited_env() -> BTreeMap<String, String> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// The jobs `names` mean: each a job of the file, or every copy of a job with replicas.
pub fn select(project: &Project, names: &[String]) -> Result<Vec<String>> {
    let mut only = Vec::new();
    for name in names {
        let named = project
            .jobs
            .iter()
            .filter(|j| j.name.as_ref() == Some(name) || j.replica.as_ref().is_some_and(|r| r.of == *name));
        let before = only.len();
        only.extend(named.filter_map(|j| j.name.clone()));
        if only.len() == before {
            return Err(Error::not_found(format!("there is no job {name:?} in {}", project.file.display()))
                .with_hint("`bgrun plan` lists the file's jobs"));
        }
    }
    Ok(only)
}
