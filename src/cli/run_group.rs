use super::Output;
use super::project::FileArg;
use crate::client::Client;
use crate::error::Result;
use crate::home::Home;
use crate::protocol::WaitFor;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs of the project file to start, with the jobs they start after.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
}

/// Starts the named jobs of the file in parallel, each once its dependencies are ready; answers
/// once each has a process (or waits for its dependencies).
pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let Some((project, only)) = args.file.load(out, &args.names)? else { return Ok(1) };
    let view = super::up::converge(home, &project, &only, &[], WaitFor::Launched, true, None)?;
    // The contract's shape: an array of jobs as `list` shows them, with what the group did to each.
    let listed = Client::connect(home)?.list(None)?;
    let jobs: Vec<serde_json::Value> = view
        .jobs
        .iter()
        .filter_map(|j| {
            let mut entry = serde_json::to_value(listed.iter().find(|l| l.id == j.id)?).ok()?;
            entry["action"] = serde_json::Value::String(j.action.clone());
            Some(entry)
        })
        .collect();
    if out.json {
        out.json_line(&jobs);
    } else {
        for j in &view.jobs {
            out.text(&format!("{:<16} {:<9} {}", j.job, j.state, j.pid.map_or(String::new(), |p| format!("pid {p}"))));
        }
    }
    Ok(if view.ok { 0 } else { 1 })
}
