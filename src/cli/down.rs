use super::Output;
use super::project::FileArg;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::protocol::{Request, Response};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs; all of the project when none are named.
    pub names: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
}

/// Stops the project's jobs, dependents before what they depend on.
pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let Some(project) = args.file.load(out)? else { return Ok(1) };
    let req = Request::Down { project: project.name.clone(), only: args.names };
    let Response::Down { stopped } = Client::connect(home)?.call(req)? else {
        return Err(Error::new("unexpected answer from the daemon"));
    };
    if out.json {
        out.json_line(&serde_json::json!({ "project": project.name, "stopped": stopped }));
    } else {
        out.text(&format!("{}: {} job(s) stopped", project.name, stopped.len()));
    }
    Ok(0)
}
