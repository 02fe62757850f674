use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;
use crate::protocol::KillTarget;
use crate::protocol::short_id;
use crate::spec::parse_duration;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
    /// Kill every job of this workspace.
    #[arg(long, conflicts_with_all = ["id", "name"])]
    pub workspace: Option<String>,
    /// Time between SIGTERM and SIGKILL (default: the job's own, 5s unless set at run).
    #[arg(long, value_parser = parse_duration)]
    pub grace: Option<Duration>,
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let target = match args.workspace {
        Some(ws) => KillTarget::Workspace(ws),
        None => KillTarget::Job(args.job.key()?),
    };
    let grace_ms = args.grace.map(|g| g.as_millis() as u64);
    let killed = client.kill(target, grace_ms)?;
    if out.json {
        out.json_line(&serde_json::json!({ "killed": killed }));
    } else if killed.is_empty() {
        out.text("nothing was running");
    } else {
        out.text(&format!("killed {}", killed.iter().map(|id| short_id(id)).collect::<Vec<_>>().join(", ")));
    }
    Ok(0)
}
