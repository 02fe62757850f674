use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;
use crate::render::{paint, state_and_reason, state_colour};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let s = client.status(args.job.key()?)?;
    if out.json {
        out.json_line(&s);
        return Ok(0);
    }
    let dash = || "-".to_string();
    let mut text = String::new();
    let mut row = |k: &str, v: String| text.push_str(&format!("{k:<10} {v}\n"));
    row("id", s.id.clone());
    row("name", s.name.clone().unwrap_or_else(dash));
    row("workspace", s.workspace.clone().unwrap_or_else(dash));
    let state = state_and_reason(&s.state, &s.reason);
    row("project", s.project.clone().unwrap_or_else(dash));
    row("state", state.replacen(&s.state, &paint(&s.state, state_colour(&s.state), out.colour), 1));
    row("pid", s.pid.map_or_else(dash, |p| p.to_string()));
    row("command", s.cmd.join(" "));
    row("cwd", s.cwd.clone());
    row("started", s.started_at.clone().unwrap_or_else(dash));
    row("ready", s.ready_at.clone().unwrap_or_else(dash));
    if let Some(code) = s.exit_code {
        row("exit code", code.to_string());
    }
    row("restarts", s.restart_count.to_string());
    row("log", s.log.clone());
    if let Some(c) = &s.container {
        let health = c.health.as_ref().map_or(String::new(), |h| format!(", {h}"));
        let id = c.id.get(..12).unwrap_or(&c.id);
        row("container", format!("{} {id} ({}{health})", c.name, c.state));
    }
    row("events", String::new());
    for e in &s.events {
        text.push_str(&format!("  {}  {:<12} {}\n", e.at, e.kind, e.detail));
    }
    out.text(&text);
    Ok(0)
}
