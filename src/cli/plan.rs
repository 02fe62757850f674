use super::Output;
use super::project::FileArg;
use crate::client::Client;
use crate::error::Result;
use crate::home::Home;
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
    let Some((project, only)) = args.file.load(out, &args.names)? else { return Ok(1) };
    let changes = Client::connect(home)?.plan(project.name.clone(), project.jobs.clone(), only)?;
    let project = project.name;
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
