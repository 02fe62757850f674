//! `bgrun logs [NAME...] [-f] [--since D]`: the output of several jobs in one view ordered by
//! time, each line labelled with its job (compose's and overmind's merged view). Each job is read
//! (and followed) over a connection of its own; the lines are merged here.

use super::Output;
use super::tail::FilterArgs;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::protocol::{JobView, LineView, Request, Response, TailRequest};
use crate::render::{Colour, paint};
use std::sync::mpsc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs (names, ids or project/name); default: the jobs of the bgrun.toml here, or every job.
    pub jobs: Vec<String>,
    /// Keep printing new lines, across restarts, until every job is finished (or Ctrl+C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines written in this last stretch of time (e.g. 5m, 1h).
    #[arg(long, value_parser = crate::spec::parse_duration)]
    pub since: Option<Duration>,
    /// Lines per job (the last ones; with --since, those of the window, up to 100,000).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub lines: usize,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// With --since, the lines of the window, up to this many per job: they are merged by time in
/// memory before the first is printed.
const SINCE_LINES: usize = 100_000;

/// What a job's reader sends: its first lines, more lines, or that it has ended (after its first
/// lines, or instead of them when it could not be read).
enum Part {
    First(usize, Vec<LineView>),
    More(usize, Vec<LineView>),
    Done(usize),
}

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let jobs = chosen_jobs(&args.jobs, home)?;
    if jobs.is_empty() {
        out.text("no jobs");
        return Ok(0);
    }
    let mut filter = args.filter.to_filter(None);
    filter.since_ms = args.since.map(|d| crate::clock::unix_ms().saturating_sub(d.as_millis() as u64));
    let lines = if args.since.is_some() { SINCE_LINES } else { args.lines };
    let labels: Vec<String> = jobs.iter().map(|j| j.display_name().to_string()).collect();
    let (tx, rx) = mpsc::channel();
    for (i, job) in jobs.iter().enumerate() {
        let req =
            TailRequest { job: job.id.clone(), lines, filter: filter.clone(), digest: false, follow: args.follow };
        let (home, tx) = (home.clone(), tx.clone());
        std::thread::spawn(move || read_job(i, req, &home, &tx));
    }
    drop(tx);
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let print = Printer { labels, out, width };
    // The first lines of every job, merged by time; then lines as they come.
    let mut heard = vec![false; jobs.len()];
    let mut first: Vec<(usize, LineView)> = Vec::new();
    let mut later = Vec::new();
    while heard.contains(&false) {
        match rx.recv() {
            Ok(Part::First(i, lines)) => {
                first.extend(lines.into_iter().map(|l| (i, l)));
                heard[i] = true;
            }
            Ok(Part::Done(i)) => heard[i] = true,
            Ok(more) => later.push(more),
            Err(_) => break,
        }
    }
    // Timestamps are RFC 3339 of one width: their order is their text's.
    first.sort_by(|a, b| a.1.timestamp.cmp(&b.1.timestamp));
    for (i, line) in &first {
        print.line(*i, line);
    }
    for part in later.into_iter().chain(rx.iter()) {
        if let Part::More(i, lines) = part {
            lines.iter().for_each(|l| print.line(i, l));
        }
    }
    Ok(0)
}

/// The jobs asked for, or those of the project file here, or every job.
fn chosen_jobs(keys: &[String], home: &Home) -> Result<Vec<JobView>> {
    let mut client = Client::connect(home)?;
    let all = client.list(None)?;
    if !keys.is_empty() {
        return keys
            .iter()
            .map(|key| {
                let id = client.status(key.clone())?.id;
                all.iter().find(|j| j.id == id).cloned().ok_or_else(|| Error::not_found(format!("no job {key:?}")))
            })
            .collect();
    }
    let here = std::env::current_dir().map_err(|e| Error::context("current directory", e))?;
    let project = crate::project::load::find(&here)
        .and_then(|file| crate::project::load::load(&file, &super::project::FileArg::default().options()).ok());
    Ok(match project {
        Some(p) => all.into_iter().filter(|j| j.project.as_deref() == Some(p.name.as_str())).collect(),
        None => all,
    })
}

/// Reads one job's lines (following them when asked) and hands them over, then says it ended.
fn read_job(i: usize, req: TailRequest, home: &Home, tx: &mpsc::Sender<Part>) {
    let follow = req.follow;
    let read = || -> Result<()> {
        let mut client = Client::connect(home)?;
        client.send(Request::Tail(req))?;
        // The last lines, which may come in several frames, are handed over as one part.
        let mut first = Some(Vec::new());
        loop {
            match client.receive()? {
                Response::Lines { lines, more } => {
                    let part = match first.as_mut() {
                        Some(so_far) if more => {
                            so_far.extend(lines);
                            continue;
                        }
                        Some(so_far) => {
                            so_far.extend(lines);
                            Part::First(i, first.take().unwrap_or_default())
                        }
                        None => Part::More(i, lines),
                    };
                    if tx.send(part).is_err() || !follow {
                        return Ok(());
                    }
                }
                Response::End { .. } => return Ok(()),
                other => return Err(crate::client::unexpected(&other)),
            }
        }
    };
    if let Err(e) = read() {
        crate::warn!("error: job {}: {e}", i + 1);
    }
    let _ = tx.send(Part::Done(i));
}

struct Printer<'a> {
    labels: Vec<String>,
    out: &'a Output,
    width: usize,
}

const COLOURS: [Colour; 4] = [Colour::Green, Colour::Blue, Colour::Yellow, Colour::Red];

impl Printer<'_> {
    /// `name | line` on a terminal (the name coloured per job); NDJSON with a `job` field otherwise.
    fn line(&self, i: usize, line: &LineView) {
        let job = &self.labels[i];
        if self.out.json {
            let mut value = serde_json::to_value(line).unwrap_or_default();
            value["job"] = serde_json::Value::String(job.clone());
            self.out.json_line(&value);
        } else {
            let name = paint(&format!("{job:<w$}", w = self.width), COLOURS[i % COLOURS.len()], self.out.colour);
            self.out.text(&format!("{name} | {}", line.content));
        }
    }
}
