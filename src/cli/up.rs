use super::Output;
use super::project::FileArg;
use crate::client::Client;
use crate::error::Result;
use crate::home::Home;
use crate::protocol::{UpJob, UpRequest, UpView, WaitFor};
use crate::render::{Colour, paint, state_colour};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs (and the jobs they start after); all when none are named.
    pub names: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
    /// Answer once the change is applied, without waiting for readiness.
    #[arg(long)]
    pub no_wait: bool,
    /// Keep watching the file (and each job's `watch` globs) and converge again on every save.
    #[arg(long)]
    pub watch: bool,
    /// Before starting a job, stop any process of yours that holds its ports.
    #[arg(long)]
    pub force: bool,
}

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let Some((mut project, only)) = args.file.load(out, &args.names)? else { return Ok(1) };
    project.force(args.force);
    let wait = if args.no_wait { WaitFor::Applied } else { WaitFor::Ready };
    if args.watch {
        return super::watch::run(home, &args.file, project, &only, wait, out);
    }
    let view = converge(home, &project, &only, &[], wait, true, Some(out))?;
    print(&view, out);
    Ok(if view.ok { 0 } else { 1 })
}

/// Sends the project to the daemon and returns how it went, printing each job's progress to
/// `progress` when that is a person's terminal.
pub fn converge(
    home: &Home,
    project: &crate::project::load::Project,
    only: &[String],
    renew: &[String],
    wait: WaitFor,
    revive: bool,
    progress: Option<&Output>,
) -> Result<UpView> {
    let progress = progress.filter(|o| !o.json);
    let req = UpRequest {
        project: project.name.clone(),
        file: project.file.display().to_string(),
        jobs: project.jobs.clone(),
        only: only.to_vec(),
        wait,
        revive,
        progress: progress.is_some(),
        renew: renew.to_vec(),
    };
    Client::connect(home)?.up(req, |job| {
        if let Some(out) = progress {
            out.text(&progress_line(&job, out.colour));
        }
    })
}

pub fn print(view: &UpView, out: &Output) {
    if out.json {
        out.json_line(view);
    } else {
        out.text(&summary(view, out.colour));
    }
}

fn progress_line(job: &UpJob, colour: bool) -> String {
    let state = paint(&format!("{:<9}", job.state), state_colour(&job.state), colour);
    // What the state does not say already: why a job waits, how readiness went.
    let shown = crate::render::state_and_reason(&job.state, &job.reason);
    let detail = shown.strip_prefix(job.state.as_str()).unwrap_or_default().trim();
    format!("  {:<16} {state} {:>6} ms  {detail}", job.job, job.elapsed_ms)
}

fn summary(view: &UpView, colour: bool) -> String {
    let changed = view.jobs.iter().filter(|j| j.action != "unchanged").count();
    let failed: Vec<&UpJob> = view.jobs.iter().filter(|j| !j.ok).collect();
    let mut text = if changed == 0 {
        format!("{}: nothing to do, {} jobs up to date", view.project, view.jobs.len())
    } else {
        format!("{}: {changed} job(s) changed in {} ms", view.project, view.elapsed_ms)
    };
    for j in failed {
        text.push_str(&format!("\n  {} {}: {}", paint("failed", Colour::Red, colour), j.job, j.reason));
    }
    text
}
