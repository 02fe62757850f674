//! `bgrun up --watch`: converge again whenever the project file (or one of its env-files) is
//! saved, and restart a job when files matching its `watch` globs change. A save that does not
//! load prints its problems and leaves the last good state running, untouched, and so does a save
//! that would remove every job. Jobs stopped on request stay stopped: only an explicit `up` brings
//! them back. Only changes count (content, creation, removal, rename), never a file being read.

use super::Output;
use super::project::{FileArg, print_problems};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::project::load::{self, Project};
use crate::protocol::{Request, WaitFor};
use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Saves come in bursts (editors write, rename, touch); act once they settle.
const DEBOUNCE: Duration = Duration::from_millis(200);
const ALWAYS_IGNORED: [&str; 3] = ["**/.git/**", "**/target/**", "**/node_modules/**"];

/// A job's `watch` globs, relative to its working directory.
struct JobWatch {
    name: String,
    cwd: PathBuf,
    matches: GlobSet,
    ignored: GlobSet,
}

fn globset(patterns: impl IntoIterator<Item = String>) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(&p).map_err(|e| Error::new(format!("watch glob {p:?}: {e}")))?);
    }
    b.build().map_err(|e| Error::new(format!("watch globs: {e}")))
}

fn job_watches(project: &Project) -> Result<Vec<JobWatch>> {
    let mut out = Vec::new();
    for spec in project.jobs.iter().filter(|j| !j.watch.is_empty()) {
        out.push(JobWatch {
            name: spec.name.clone().unwrap_or_default(),
            cwd: spec.cwd.clone(),
            matches: globset(spec.watch.clone())?,
            ignored: globset(ALWAYS_IGNORED.iter().map(|s| s.to_string()).chain(spec.watch_ignore.clone()))?,
        });
    }
    Ok(out)
}

impl JobWatch {
    fn wants(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.cwd) else { return false };
        !self.ignored.is_match(rel) && !self.ignored.is_match(path) && self.matches.is_match(rel)
    }
}

/// Watches first, then converges to `project` as `up` does, then again on every save: a save made
/// while the first converge runs is not missed.
/// Moves the recursive watches from the old jobs' directories to the new ones, touching only
/// those that changed (a directory unwatched and watched again would miss what happens between).
/// The project's own directory always keeps at least its plain watch.
fn rewatch(watcher: &mut impl Watcher, project_dir: &Path, old: &[JobWatch], new: &[JobWatch]) {
    let dirs = |jobs: &[JobWatch]| jobs.iter().map(|j| j.cwd.clone()).collect::<BTreeSet<_>>();
    let (old, new) = (dirs(old), dirs(new));
    for gone in old.difference(&new) {
        let _ = watcher.unwatch(gone);
        if gone == project_dir {
            let _ = watcher.watch(project_dir, RecursiveMode::NonRecursive);
        }
    }
    for added in new.difference(&old) {
        let _ = watcher.watch(added, RecursiveMode::Recursive);
    }
}

pub fn run(
    home: &Home,
    file_arg: &FileArg,
    mut project: Project,
    only: &[String],
    wait: WaitFor,
    out: &Output,
) -> Result<i32> {
    let file = file_arg.path()?;
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only changes count: a file opened or read (by the loader, by a job starting) is not one.
        if let Ok(event) = event
            && crate::logs::watch::is_change(&event.kind)
        {
            let _ = tx.send(event.paths);
        }
    })
    .map_err(|e| Error::context("cannot watch files", e))?;
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(|e| Error::context("cannot watch the project", e))?;
    let mut jobs = job_watches(&project)?;
    for j in &jobs {
        watcher
            .watch(&j.cwd, RecursiveMode::Recursive)
            .map_err(|e| Error::context(format!("cannot watch {}", j.cwd.display()), e))?;
    }
    let view = super::up::converge(home, &project, only, &[], wait, true, Some(out))?;
    super::up::print(&view, out);
    if out.json {
        out.json_line(&serde_json::json!({ "watching": file }));
    } else {
        out.text(&format!("watching {} (Ctrl+C to stop; jobs keep running)", file.display()));
    }
    loop {
        let Ok(first) = rx.recv() else { return Ok(0) };
        let mut paths: BTreeSet<PathBuf> = first.into_iter().collect();
        let until = Instant::now() + DEBOUNCE;
        while let Ok(more) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            paths.extend(more);
        }
        // The file and its env-files, as of the last good load (a broken save still names the file).
        if paths.iter().any(|p| *p == file || project.inputs.contains(p)) {
            match load::load(&file, &file_arg.options()) {
                // Editors that truncate before they write produce such a save for an instant:
                // stopping and forgetting every job (logs included) for it is never what was meant.
                Ok(p) if p.jobs.is_empty() && !project.jobs.is_empty() => {
                    let why =
                        "the saved file has no jobs: not applied (save again, or run `bgrun up` to stop them all)";
                    if out.json {
                        out.json_line(&serde_json::json!({ "held": why }));
                    } else {
                        out.text(&format!("  {}: {why}", file.display()));
                    }
                }
                Ok(p) => {
                    // The watches follow the file first, so no change made during the converge
                    // is missed.
                    let new_jobs = job_watches(&p)?;
                    rewatch(&mut watcher, &dir, &jobs, &new_jobs);
                    jobs = new_jobs;
                    let view = super::up::converge(home, &p, only, &[], wait, false, Some(out))?;
                    super::up::print(&view, out);
                    project = p;
                }
                // The last good state keeps running, untouched.
                Err(problems) => print_problems(&problems, out),
            }
            continue;
        }
        let restart: BTreeSet<&str> =
            jobs.iter().filter(|j| paths.iter().any(|p| j.wants(p))).map(|j| j.name.as_str()).collect();
        for name in restart {
            let key = format!("{}/{name}", project.name);
            match Client::connect(home)?.call(Request::Restart { job: key, force: false }) {
                Ok(_) if !out.json => out.text(&format!("  {name} restarted: watched files changed")),
                Ok(_) => out.json_line(&serde_json::json!({ "restarted": name })),
                Err(e) => crate::warn!("error: cannot restart {name}: {e}"),
            }
        }
    }
}
