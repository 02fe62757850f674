//! The command line: one file per command. Output is JSON when stdout is not a terminal or with
//! `--json` anywhere on the line, and a readable, coloured rendering on a terminal.

mod attach;
mod clean;
mod completions;
mod daemon;
mod dashboard;
mod delete;
mod deploy;
mod diff;
mod down;
mod env;
mod expect;
mod export;
mod import;
mod kill;
mod list;
mod logs;
mod menu;
mod nuke;
mod plan;
pub mod project;
mod restart;
pub mod run;
mod run_group;
mod schema;
mod screen;
mod send;
mod skill;
pub use skill::SKILL;
mod startup;
mod stats;
mod status;
mod tail;
pub mod up;
mod wait;
mod watch;

use crate::client::Client;
use crate::error::Result;
use crate::home::Home;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};

#[derive(Parser)]
#[command(name = "bgrun", version, about = "Run background jobs: logs, readiness, restarts and clean stops", long_about = None)]
pub struct Cli {
    /// Print JSON even on a terminal.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start a background job.
    Run(Box<run::Args>),
    /// Converge the project's jobs to its bgrun.toml (start, replace, update, stop what changed).
    Up(up::Args),
    /// Fetch the project's git upstream, fast-forward, converge like `up`; roll back on failure.
    Deploy(deploy::Args),
    /// Stop the project's jobs, dependents first.
    Down(down::Args),
    /// Show what `up` would do to each job, and why, without doing it.
    Plan(plan::Args),
    /// Start named jobs of bgrun.toml with the jobs they start after.
    RunGroup(run_group::Args),
    /// Write a bgrun.toml from a PM2 ecosystem file, a Procfile or a process-compose.yaml.
    Import(import::Args),
    /// Write the project as systemd units, a compose file or Kubernetes manifests.
    Export(export::Args),
    /// List jobs.
    List(list::Args),
    /// Show the state of a job.
    Status(status::Args),
    /// Show the last lines of a job's output.
    Tail(tail::Args),
    /// The output of several jobs (default: this project's) in one time-ordered view.
    Logs(logs::Args),
    /// Show the output written since the last diff.
    Diff(diff::Args),
    /// Stop jobs: SIGTERM to the process group, SIGKILL after the grace period.
    Kill(kill::Args),
    /// Stop a job and start it again (same id, same log).
    Restart(restart::Args),
    /// Write to a job's stdin.
    Send(send::Args),
    /// CPU and memory of a job's process tree, and its uptime.
    Stats(stats::Args),
    /// A job's environment, each variable with where it came from.
    Env(env::Args),
    /// A job's current screen (the rendered terminal of a PTY job).
    Screen(screen::Args),
    /// Use a PTY job's terminal from yours; Ctrl+C detaches.
    Attach(attach::Args),
    /// Forget finished jobs and their logs.
    Clean(clean::Args),
    /// Stop a job and forget it, its logs too.
    Delete(delete::Args),
    /// Stop every job and forget them all, logs included.
    Nuke(nuke::Args),
    /// Wait until a job is ready (exit 0) or has ended or timed out (exit 1).
    Wait(wait::Args),
    /// Wait for a line matching a pattern in a job's output (exit 0 on a match).
    Expect(expect::Args),
    /// The daemon itself.
    Daemon(daemon::Args),
    /// Start the web dashboard (a job of its own) and print its URL; `dashboard stop` stops it.
    Dashboard(dashboard::Args),
    /// Write (or --print) a systemd unit that starts the daemon at boot.
    Startup(startup::Args),
    /// Remove the unit `startup` wrote.
    Unstartup(startup::Args),
    /// JSON Schema (draft-07) of a command's arguments: run, kill or tail.
    Schema(schema::Args),
    /// Install the skill that teaches AI coding agents to use bgrun.
    Skill(skill::Args),
    /// Shell completion scripts, and live job ids for them.
    #[command(hide = true)]
    Completions(completions::Args),
}

/// How to print: JSON for programs, text for people.
pub struct Output {
    pub json: bool,
    pub colour: bool,
}

impl Output {
    /// JSON when asked for, or when stdout is not a terminal.
    pub fn new(json: bool) -> Output {
        Output { json: json || !std::io::stdout().is_terminal(), colour: crate::render::colours_enabled() }
    }

    pub fn json_line<T: serde::Serialize>(&self, value: &T) {
        self.json_lines([value]);
    }

    /// One line of JSON per value, written in large pieces: stdout's line buffer would otherwise
    /// see each value in many small pieces, and write each line with a call of its own.
    pub fn json_lines<T: serde::Serialize>(&self, values: impl IntoIterator<Item = T>) {
        let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
        for value in values {
            let _ = serde_json::to_writer(&mut out, &value);
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }

    pub fn text(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = writeln!(out);
        }
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let out = Output::new(cli.json);
    // `run` needs to know which flags were typed, to lay them over a job from bgrun.toml.
    let run_matches = matches.subcommand_matches("run").cloned();
    finish(execute(cli.command, run_matches, &out))
}

/// `bgrun-deploy`, the binary `bgrun deploy` runs: git (libgit2, with OpenSSL and libssh2) is
/// linked into it alone, so the daemon and every other command load none of it.
pub fn deploy_main() -> i32 {
    use clap::Parser;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let [_, command, dir] = args.as_slice()
        && command == FETCH_COMMAND
    {
        return finish(deploy::fetch_checkout(std::path::Path::new(dir)).map(|()| 0));
    }
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let Some(Command::Deploy(args)) = cli.command else {
        crate::warn!("error: bgrun-deploy runs `bgrun deploy`; use bgrun for the other commands");
        return crate::error::ErrorKind::BadInput.exit_code();
    };
    finish(Home::from_env().and_then(|home| deploy::exec(args, &home, &out)))
}

/// How a job's supervisor asks bgrun-deploy to fast-forward the job's checkout (`fetch`).
pub const FETCH_COMMAND: &str = "__fetch";

/// Who runs this command: the user's name, or the uid when it has none.
fn user_name() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name)
}

/// The exit code of a command, its error (if any) printed.
fn finish(result: Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            crate::warn!("error: {e}");
            e.kind.exit_code()
        }
    }
}

fn execute(command: Option<Command>, run_matches: Option<clap::ArgMatches>, out: &Output) -> Result<i32> {
    let home = Home::from_env()?;
    let connect = || Client::connect(&home);
    match command {
        Some(Command::Run(args)) => {
            let spec = args.into_spec(&run_matches.unwrap_or_default())?;
            run::exec(spec, &home, out)
        }
        Some(Command::Up(args)) => up::exec(args, &home, out),
        Some(Command::Deploy(_)) => deploy::delegate(),
        Some(Command::Down(args)) => down::exec(args, &home, out),
        Some(Command::Plan(args)) => plan::exec(args, &home, out),
        Some(Command::RunGroup(args)) => run_group::exec(args, &home, out),
        Some(Command::Import(args)) => import::exec(args, out),
        Some(Command::Export(args)) => export::exec(args, out),
        Some(Command::List(args)) => list::exec(args, &mut connect()?, out),
        // On a terminal, a menu; otherwise (a script) the same as `list`.
        None if !out.json && std::io::stdin().is_terminal() => menu::run(&home, out),
        None => list::exec(list::Args::default(), &mut connect()?, out),
        Some(Command::Status(args)) => status::exec(args, &mut connect()?, out),
        Some(Command::Tail(args)) => tail::exec(args, &mut connect()?, out),
        Some(Command::Diff(args)) => diff::exec(args, &mut connect()?, out),
        Some(Command::Logs(args)) => logs::exec(args, &home, out),
        Some(Command::Kill(args)) => kill::exec(args, &mut connect()?, out),
        Some(Command::Restart(args)) => restart::exec(args, &mut connect()?, out),
        Some(Command::Send(args)) => send::exec(args, &mut connect()?, out),
        Some(Command::Stats(args)) => stats::exec(args, &mut connect()?, out),
        Some(Command::Env(args)) => env::exec(args, &mut connect()?, out),
        Some(Command::Screen(args)) => screen::exec(args, &mut connect()?, out),
        Some(Command::Attach(args)) => attach::exec(args, &mut connect()?, out),
        Some(Command::Clean(args)) => clean::exec(args, &mut connect()?, out),
        Some(Command::Delete(args)) => delete::exec(args, &mut connect()?, out),
        Some(Command::Nuke(args)) => nuke::exec(args, &mut connect()?, out),
        Some(Command::Wait(args)) => wait::exec(args, &mut connect()?, out),
        Some(Command::Expect(args)) => expect::exec(args, &mut connect()?, out),
        Some(Command::Daemon(args)) => daemon::exec(args, &home, out),
        Some(Command::Dashboard(args)) => dashboard::exec(args, &home, out),
        Some(Command::Startup(args)) => startup::exec(args, &home, out),
        Some(Command::Unstartup(args)) => startup::remove(args, out),
        Some(Command::Skill(args)) => skill::exec(args, out),
        Some(Command::Schema(args)) => schema::exec(args, out),
        Some(Command::Completions(args)) => completions::exec(args, &home, out),
    }
}

/// A job given as a positional id or name, or as `--name`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct JobArg {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: Option<String>,
    /// Job name (instead of the positional id).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
}

impl JobArg {
    pub fn key(&self) -> Result<String> {
        job_key(&self.id, &self.name)
    }
}

/// A job as [`JobArg`] takes it, but `--name` without `-n` (which `tail` keeps for its line count,
/// as tail(1) does).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct JobKeyArg {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: Option<String>,
    /// Job name (instead of the positional id).
    #[arg(long)]
    pub name: Option<String>,
}

impl JobKeyArg {
    pub fn key(&self) -> Result<String> {
        job_key(&self.id, &self.name)
    }
}

fn job_key(id: &Option<String>, name: &Option<String>) -> Result<String> {
    match (id, name) {
        (Some(id), None) => Ok(id.clone()),
        (None, Some(name)) => Ok(name.clone()),
        (Some(_), Some(_)) => Err(crate::error::Error::new("give either a job id or --name, not both")),
        (None, None) => Err(crate::error::Error::new("which job? give its id or name")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
