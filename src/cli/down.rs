use super::Output;
use super::project::FileArg;
use crate::client::Client;
use crate::error::Result;
use crate::home::Home;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs; all of the project when none are named.
    pub names: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
}

/// Stops the project's jobs, dependents before what they depend on.
pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let Some((project, only)) = args.file.load(out, &args.names)? else { return Ok(1) };
    let stopped = Client::connect(home)?.down(project.name.clone(), only)?;
    if out.json {
        out.json_line(&serde_json::json!({ "project": project.name, "stopped": stopped }));
    } else {
        out.text(&format!("{}: {} job(s) stopped", project.name, stopped.len()));
    }
    Ok(0)
}
