//! `bgrun deploy`: fetch the project's git upstream, fast-forward the checkout, converge like
//! `up` to the new file, and move back (converging again) when a job does not come up (ready,
//! then healthy within its health start period).

use super::Output;
use super::project::{FileArg, print_problems, select};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::git::{self, Move};
use crate::home::Home;
use crate::project::load::{self, Project};
use crate::protocol::{DeployJob, DeployView, UpView, WaitFor, short_commit};
use crate::render::{Colour, paint};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs (and the jobs they start after); all when none are named.
    pub names: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
    /// Move to this branch, tag or commit (fetched from the remote) instead of the branch's
    /// upstream; still a fast-forward only.
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Fetch and show what would move and what `up` would do, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the new checkout even when a job does not come up.
    #[arg(long)]
    pub no_rollback: bool,
    /// Show the project's last deploys instead.
    #[arg(long)]
    pub history: bool,
    /// Before starting a job, stop any process of yours that holds its ports.
    #[arg(long)]
    pub force: bool,
}

/// Runs `bgrun-deploy` (beside this binary) with our arguments, in our place.
pub fn delegate() -> Result<i32> {
    Err(crate::programs::exec_instead(crate::programs::DEPLOY, std::env::args_os().skip(1)))
}

/// A job's `fetch`: fast-forward the checkout holding `dir`, or refuse as a deploy does.
pub fn fetch_checkout(dir: &std::path::Path) -> Result<()> {
    let (repo, moved) = git::prepare(dir, None)?;
    if moved.moves() {
        git::move_to(&repo, &moved.branch, moved.new, "bgrun fetch: fast-forward")?;
    }
    Ok(())
}

/// How many deploys `--history` shows.
const HISTORY: usize = 20;

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let path = args.file.path()?;
    if args.history {
        return history(&args, home, out);
    }
    let dir = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let (repo, moved) = git::prepare(&dir, args.reference.as_deref())?;
    if args.dry_run {
        return dry_run(&args, home, out, &repo, &moved);
    }
    if moved.moves() {
        git::move_to(&repo, &moved.branch, moved.new, "bgrun deploy: fast-forward")?;
    }
    let Some((mut project, only)) = load_or_move_back(&args, out, &repo, &moved)? else { return Ok(1) };
    project.force(args.force);
    let renew = code_changed(&project, &git::changed_files(&repo, moved.old, moved.new)?);
    let mut view = super::up::converge(home, &project, &only, &renew, WaitFor::Ready, true, Some(out))?;
    if view.ok {
        wait_healthy(home, &project, &mut view)?;
    }
    let mut deploy = record(&project, &moved, &view);
    if !view.ok && moved.moves() && !args.no_rollback {
        git::move_to(&repo, &moved.branch, moved.old, "bgrun deploy: rollback")?;
        if let Some((old_project, old_only)) = args.file.load(out, &args.names)? {
            super::up::converge(home, &old_project, &old_only, &renew, WaitFor::Ready, true, Some(out))?;
        }
        deploy.rolled_back = true;
    }
    Client::connect(home)?.record_deploy(deploy.clone())?;
    print(&deploy, out);
    Ok(if deploy.ok { 0 } else { 1 })
}

/// How often a deploy looks at the health of the jobs it started.
const HEALTH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Each job the deploy started (or replaced) that has health checks must pass one within its
/// start period (plus an interval and a check's timeout: the first check that counts). One that
/// fails a check that counts, stops or restarts meanwhile, or passes none in time, fails the
/// deploy (which then moves back).
fn wait_healthy(home: &Home, project: &Project, view: &mut UpView) -> Result<()> {
    let mut client = Client::connect(home)?;
    let started = std::time::Instant::now();
    let mut pending: Vec<(usize, std::time::Duration)> = view
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| j.ok && matches!(j.action.as_str(), "create" | "replace"))
        .filter_map(|(i, j)| {
            let health = project.jobs.iter().find(|s| s.name.as_deref() == Some(&j.job))?.health.as_ref()?;
            Some((i, health.start_period + health.interval + health.timeout + HEALTH_POLL))
        })
        .collect();
    while !pending.is_empty() {
        std::thread::sleep(HEALTH_POLL);
        let mut waiting = Vec::new();
        for (i, within) in pending {
            let job = &mut view.jobs[i];
            let status = client.status(job.id.clone())?;
            let health = client.stats(job.id.clone()).ok().and_then(|s| s.health);
            let failed = match health {
                _ if status.pid != job.pid || status.state != "ready" => {
                    Some(format!("not healthy: it is {} ({})", status.state, status.reason))
                }
                Some(h) if h.passed => None,
                Some(h) if !h.healthy => Some(format!("not healthy: {} failed health checks", h.failures)),
                _ if started.elapsed() >= within => {
                    Some(format!("not healthy within {}", humantime::format_duration(within)))
                }
                _ => {
                    waiting.push((i, within));
                    None
                }
            };
            if let Some(reason) = failed {
                (job.ok, job.reason, view.ok) = (false, reason, false);
            }
        }
        pending = waiting;
    }
    Ok(())
}

/// The new file, loaded; a file that does not load moves the checkout back and changes nothing.
fn load_or_move_back(
    args: &Args,
    out: &Output,
    repo: &git2::Repository,
    moved: &Move,
) -> Result<Option<(Project, Vec<String>)>> {
    let loaded = args.file.load(out, &args.names);
    if !matches!(loaded, Ok(Some(_))) && moved.moves() {
        git::move_to(repo, &moved.branch, moved.old, "bgrun deploy: the new file does not load")?;
        let why = format!(
            "{} at {} does not load: moved back to {}",
            crate::project::FILE_NAME,
            git::short(moved.new),
            git::short(moved.old)
        );
        return Err(Error::bad_input(why));
    }
    loaded
}

/// The jobs whose code the deploy changed: a file under the job's working directory, other
/// than the project's own files (whose changes the jobs' specs already show).
fn code_changed(project: &Project, changed: &[std::path::PathBuf]) -> Vec<String> {
    let code: Vec<&std::path::PathBuf> = changed.iter().filter(|f| !project.inputs.contains(f)).collect();
    project
        .jobs
        .iter()
        .filter(|job| code.iter().any(|f| f.starts_with(&job.cwd)))
        .filter_map(|job| job.name.clone())
        .collect()
}

/// What moving would do: the commits, and `up`'s plan for the file as the new commit has it.
fn dry_run(args: &Args, home: &Home, out: &Output, repo: &git2::Repository, moved: &Move) -> Result<i32> {
    let path = args.file.path()?;
    let text = match moved.moves() {
        true => git::file_at(repo, moved.new, &path)?,
        false => std::fs::read_to_string(&path).map_err(|e| Error::context(path.display().to_string(), e))?,
    };
    let project = match load::parse(&path, text, &args.file.options()) {
        Ok(project) => project,
        Err(problems) => {
            print_problems(&problems, out);
            return Ok(1);
        }
    };
    let only = select(&project, &args.names)?;
    let mut changes = Client::connect(home)?.plan(project.name.clone(), project.jobs.clone(), only)?;
    // A job whose code changes is replaced even where its spec stays the same.
    let renew = code_changed(&project, &git::changed_files(repo, moved.old, moved.new)?);
    for change in
        changes.iter_mut().filter(|c| renew.contains(&c.job) && matches!(c.action.as_str(), "unchanged" | "update"))
    {
        change.action = "replace".into();
        change.fields.push("code".into());
    }
    if out.json {
        out.json_line(&serde_json::json!({
            "project": project.name, "branch": moved.branch, "target": moved.target,
            "old": moved.old.to_string(), "new": moved.new.to_string(), "moves": moved.moves(),
            "changes": changes,
        }));
        return Ok(0);
    }
    let (old, new) = (moved.old.to_string(), moved.new.to_string());
    let mut text = format!("{} (dry run): {}\n", project.name, movement(&moved.branch, &moved.target, &old, &new));
    for c in &changes {
        text.push_str(&format!("  {:<16} {}{}\n", c.job, c.action, fields(&c.fields)));
    }
    out.text(&text);
    Ok(0)
}

fn history(args: &Args, home: &Home, out: &Output) -> Result<i32> {
    let Some((project, _)) = args.file.load(out, &[])? else { return Ok(1) };
    let deploys = Client::connect(home)?.deploys(project.name, HISTORY)?;
    if out.json {
        out.json_lines(&deploys);
        return Ok(0);
    }
    let mut text = String::new();
    for d in &deploys {
        let outcome = paint(d.outcome(), if d.ok { Colour::Green } else { Colour::Red }, out.colour);
        let (old, new) = (short_commit(&d.old), short_commit(&d.new));
        text.push_str(&format!("{}  {:<10} {old} → {new}  {:<16} {outcome}\n", d.at, d.user, d.target));
    }
    out.text(if text.is_empty() { "no deploys yet" } else { &text });
    Ok(0)
}

/// The deploy as the history keeps it.
fn record(project: &Project, moved: &Move, view: &UpView) -> DeployView {
    let failed: Vec<String> = view.jobs.iter().filter(|j| !j.ok).map(|j| format!("{}: {}", j.job, j.reason)).collect();
    DeployView {
        project: project.name.clone(),
        at: crate::clock::rfc3339_ms(crate::clock::unix_ms()),
        user: super::user_name(),
        branch: moved.branch.clone(),
        target: moved.target.clone(),
        old: moved.old.to_string(),
        new: moved.new.to_string(),
        ok: view.ok,
        rolled_back: false,
        reason: (!failed.is_empty()).then(|| failed.join("; ")),
        jobs: view
            .jobs
            .iter()
            .map(|j| DeployJob { job: j.job.clone(), action: j.action.clone(), state: j.state.clone(), ok: j.ok })
            .collect(),
    }
}

fn print(d: &DeployView, out: &Output) {
    if out.json {
        out.json_line(d);
        return;
    }
    let mut text = format!("{}: {}\n", d.project, movement(&d.branch, &d.target, &d.old, &d.new));
    for j in &d.jobs {
        let mark = if j.ok { paint("ok", Colour::Green, out.colour) } else { paint("failed", Colour::Red, out.colour) };
        text.push_str(&format!("  {:<16} {:<10} {mark}\n", j.job, j.action));
    }
    if let Some(reason) = &d.reason {
        text.push_str(&format!("{}\n", paint(reason, Colour::Red, out.colour)));
    }
    if d.rolled_back {
        text.push_str(&format!("rolled back to {} and converged again\n", short_commit(&d.old)));
    }
    out.text(&text);
}

fn movement(branch: &str, target: &str, old: &str, new: &str) -> String {
    match old == new {
        false => format!("{branch} {} → {} ({target})", short_commit(old), short_commit(new)),
        true => format!("{branch} at {}, up to date with {target}", short_commit(old)),
    }
}

fn fields(fields: &[String]) -> String {
    if fields.is_empty() { String::new() } else { format!(" ({})", fields.join(", ")) }
}
