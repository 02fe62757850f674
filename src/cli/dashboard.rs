//! `bgrun dashboard`: starts the web dashboard as a job of its own (so it outlives the terminal
//! and shows in `list`), prints its URL with the token once, and exits; `bgrun dashboard stop`
//! stops it.

use super::Output;
use crate::client::Client;
use crate::dashboard::{JOB_NAME, LISTENING, Listening, PORT_BUSY_EXIT, state_file};
use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use crate::protocol::{KillTarget, TailRequest};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Listen on this port only, failing if it is busy (default: 3000, or the next free one).
    #[arg(long, env = "BGRUN_DASHBOARD_PORT")]
    pub port: Option<u16>,
    /// The address to listen on (another than 127.0.0.1 makes the dashboard reachable from other
    /// machines: see the README on putting it behind a reverse proxy).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Open the URL in a browser (xdg-open).
    #[arg(long)]
    pub open: bool,
    /// A host name the dashboard may be reached by besides IP addresses and localhost; repeatable.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Stop the dashboard.
    Stop,
}

/// How long the dashboard may take to listen.
const START_TIMEOUT_MS: u64 = 10_000;

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let mut client = Client::connect(home)?;
    if let Some(Action::Stop) = args.action {
        let stopped = match client.kill(KillTarget::Job(JOB_NAME.into()), None) {
            Err(e) if e.kind == ErrorKind::NotFound => vec![],
            other => other?,
        };
        let _ = std::fs::remove_file(state_file(home));
        if out.json {
            out.json_line(&serde_json::json!({ "stopped": !stopped.is_empty() }));
        } else {
            out.text(if stopped.is_empty() { "no dashboard is running" } else { "dashboard stopped" });
        }
        return Ok(0);
    }
    let (url, started) = match running_url(&mut client, home) {
        Some(url) => (url, false),
        None => (start(&mut client, home, &args)?, true),
    };
    let token = std::fs::read_to_string(crate::dashboard::token_file(home))
        .map_err(|e| Error::context("cannot read the dashboard's token", e))?;
    let url = format!("{url}?token={}", token.trim());
    if out.json {
        out.json_line(&serde_json::json!({ "url": url, "started": started }));
    } else {
        out.text(&if started { format!("dashboard: {url}") } else { format!("dashboard (already running): {url}") });
    }
    if args.open && std::process::Command::new("xdg-open").arg(&url).spawn().is_err() {
        crate::warn!("cannot open a browser (no xdg-open): open the URL above");
    }
    Ok(0)
}

/// The URL of the dashboard that runs now, if one does.
fn running_url(client: &mut Client, home: &Home) -> Option<String> {
    let status = client.status(JOB_NAME.into()).ok()?;
    let listening = Listening::read(home)?;
    let alive = matches!(status.state.as_str(), "running" | "ready");
    let same = status.pid.is_some_and(|pid| u32::try_from(pid) == Ok(listening.pid));
    (alive && same).then_some(listening.url)
}

/// Starts the dashboard's job and waits until it listens; its URL.
fn start(client: &mut Client, home: &Home, args: &Args) -> Result<String> {
    let program = crate::programs::beside(crate::programs::DASHBOARD)
        .map_err(|e| Error::context("cannot find the bgrun binary", e))?;
    let mut run: Vec<String> = vec![
        "--name".into(),
        JOB_NAME.into(),
        "--cwd".into(),
        home.root().display().to_string(),
        "--ready-when".into(),
        LISTENING.into(),
        "--restart".into(),
        "on-crash".into(),
        // A busy --port is not worth starting again.
        "--stop-exit-codes".into(),
        PORT_BUSY_EXIT.to_string(),
        "--no-config".into(),
        "--".into(),
        program.display().to_string(),
        "--bind".into(),
        args.bind.to_string(),
    ];
    if let Some(port) = args.port {
        run.extend(["--port".into(), port.to_string()]);
    }
    for host in &args.allow_hosts {
        run.extend(["--allow-host".into(), host.clone()]);
    }
    let _ = std::fs::remove_file(state_file(home));
    let job = client.run(super::run::spec(run)?)?;
    let waited = client.wait(job.id.clone(), START_TIMEOUT_MS)?;
    if !waited.ready {
        // What it said last (its error line; its hint lines are indented).
        let said = client
            .tail(TailRequest::last(job.id.clone(), 5))
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.content)
            .rfind(|l| !l.starts_with(' '))
            .unwrap_or_else(|| "no output".into());
        let code = client.status(job.id)?.exit_code;
        let kind = if code == Some(PORT_BUSY_EXIT) { ErrorKind::Conflict } else { ErrorKind::Failed };
        return Err(Error::of(kind, format!("the dashboard did not start: {said}"))
            .with_hint("`bgrun tail bgrun-dashboard` shows its output"));
    }
    Listening::read(home)
        .map(|l| l.url)
        .ok_or_else(|| Error::new("the dashboard started but wrote no readable dashboard.json"))
}
