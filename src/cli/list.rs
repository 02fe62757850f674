use super::Output;
use crate::client::Client;
use crate::error::Result;
use crate::protocol::JobView;
use crate::protocol::short_id;
use crate::render::{paint, short_duration, state_colour, table_fitted, terminal_width};

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Only jobs of this workspace (`--filter` is the earlier bgrun's name for it).
    #[arg(long, visible_alias = "filter")]
    pub workspace: Option<String>,
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    if out.json {
        // One object per line (NDJSON), as the contract says.
        let frame = client.list_frame(args.workspace)?;
        let jobs: Vec<&serde_json::value::RawValue> = crate::client::jobs_in(&frame)?;
        out.json_lines(jobs);
        return Ok(0);
    }
    let jobs = client.list(args.workspace)?;
    if jobs.is_empty() {
        out.text("no jobs");
    } else {
        out.text(&render(&jobs, out.colour));
    }
    Ok(0)
}

fn render(jobs: &[JobView], colour: bool) -> String {
    let now = std::time::SystemTime::now();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let uptime = j
                .started_at
                .as_deref()
                .filter(|_| matches!(j.state.as_str(), "running" | "ready"))
                .and_then(|s| humantime::parse_rfc3339(s).ok())
                .and_then(|t| now.duration_since(t).ok())
                .map_or("-".into(), short_duration);
            vec![
                short_id(&j.id).to_string(),
                j.project.clone().unwrap_or_else(|| "-".into()),
                j.name.clone().unwrap_or_else(|| "-".into()),
                j.workspace.clone().unwrap_or_else(|| "-".into()),
                paint(&j.state, state_colour(&j.state), colour),
                j.pid.map_or("-".into(), |p| p.to_string()),
                uptime,
                j.cmd.join(" "),
            ]
        })
        .collect();
    let header = ["ID", "PROJECT", "NAME", "WORKSPACE", "STATE", "PID", "UPTIME", "COMMAND"];
    // Long commands are cut to the terminal's width rather than wrapping the table.
    table_fitted(&header, &rows, terminal_width())
}
