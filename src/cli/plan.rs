use super::Output;
use super::project::{FileArg, check_names};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::protocol::{Request, Response};
use crate::render::{Colour, paint};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs (and the jobs they start after).
    pub names: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
}

/// What `up` would do to each job and why. Changes nothing.
pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let Some(project) = args.file.load(out)? else { return Ok(1) };
    check_names(&project, &args.names)?;
    let req = Request::Plan { project: project.name.clone(), jobs: project.jobs.clone(), only: args.names };
    let Response::Plan { project, changes } = Client::connect(home)?.call(req)? else {
        return Err(Error::new("unexpected answer from the daemon"));
    };
    if out.json {
        out.json_line(&serde_json::json!({ "project": project, "changes": changes }));
        return Ok(0);
    }
    let mut text = format!("{project}:\n");
    for c in &changes {
        let (mark, colour) = match c.action.as_str() {
            "create" | "start" => ("+", Colour::Green),
            "replace" | "update" => ("~", Colour::Yellow),
            "remove" => ("-", Colour::Red),
            _ => (" ", Colour::Dim),
        };
        let why = if c.fields.is_empty() { String::new() } else { format!(" ({})", c.fields.join(", ")) };
        text.push_str(&paint(&format!("  {mark} {:<10} {}{why}", c.action, c.job), colour, out.colour));
        text.push('\n');
    }
    out.text(&text);
    Ok(0)
}
