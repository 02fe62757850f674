//! `bgrun` alone on a terminal: a small menu over the everyday commands. Each entry runs the same
//! code as its command; jobs are picked from a numbered list of the live daemon's jobs.

use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;
use crate::home::Home;
use crate::protocol::JobView;
use crate::protocol::short_id;
use std::io::{BufRead, Write};

const ENTRIES: [&str; 6] = [
    "List & refresh jobs",
    "View job status and stats",
    "Attach to an interactive PTY job",
    "Tail job logs",
    "Kill a job",
    "Exit menu",
];

fn prompt(text: &str) -> Option<String> {
    crate::out!("{text}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

fn jobs(home: &Home) -> Result<Vec<JobView>> {
    Client::connect(home)?.list(None)
}

/// Lets the user pick a job by number; None when there is none or the choice is empty.
fn pick(home: &Home) -> Result<Option<String>> {
    let jobs = jobs(home)?;
    if jobs.is_empty() {
        crate::outln!("no jobs");
        return Ok(None);
    }
    for (i, j) in jobs.iter().enumerate() {
        let name = j.name.as_deref().unwrap_or("-");
        crate::outln!("  {:>2}) {}  {name:<16} {:<8} {}", i + 1, short_id(&j.id), j.state, j.cmd.join(" "));
    }
    let Some(choice) = prompt(&format!("Job [1-{}]: ", jobs.len())) else { return Ok(None) };
    Ok(choice.parse::<usize>().ok().and_then(|n| jobs.get(n.wrapping_sub(1))).map(|j| j.id.clone()))
}

pub fn run(home: &Home, out: &Output) -> Result<i32> {
    loop {
        crate::outln!("\nbgrun");
        for (i, entry) in ENTRIES.iter().enumerate() {
            crate::outln!("  {}) {entry}", i + 1);
        }
        let Some(choice) = prompt("Choose [1-6]: ") else { return Ok(0) };
        let job = |home| -> Result<Option<JobArg>> { Ok(pick(home)?.map(|id| JobArg { id: Some(id), name: None })) };
        let result = match choice.as_str() {
            "1" => super::list::exec(super::list::Args::default(), &mut Client::connect(home)?, out).map(|_| ()),
            "2" => match job(home)? {
                Some(j) => {
                    let id = j.id.clone().unwrap_or_default();
                    super::status::exec(super::status::Args { job: j }, &mut Client::connect(home)?, out)?;
                    super::stats::exec(super::stats::Args { id }, &mut Client::connect(home)?, out).map(|_| ())
                }
                None => Ok(()),
            },
            "3" => match pick(home)? {
                Some(id) => {
                    super::attach::exec(super::attach::Args { id, detach_keys: None }, &mut Client::connect(home)?, out)
                        .map(|_| ())
                }
                None => Ok(()),
            },
            "4" => match pick(home)? {
                Some(id) => {
                    let job = super::JobKeyArg { id: Some(id), name: None };
                    super::tail::exec(super::tail::Args::last_lines(job, 20), &mut Client::connect(home)?, out)
                        .map(|_| ())
                }
                None => Ok(()),
            },
            "5" => match job(home)? {
                Some(j) => super::kill::exec(
                    super::kill::Args { job: j, workspace: None, grace: None },
                    &mut Client::connect(home)?,
                    out,
                )
                .map(|_| ()),
                None => Ok(()),
            },
            "6" | "q" | "" => return Ok(0),
            other => {
                crate::outln!("{other:?} is not one of 1-6");
                Ok(())
            }
        };
        // A failed entry is reported and the menu goes on.
        if let Err(e) = result {
            crate::warn!("error: {e}");
        }
    }
}
