use super::Output;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::protocol::{Request, Response};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: DaemonCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DaemonCommand {
    /// Show the daemon's pid, version, uptime and socket (starts it if needed).
    Status,
    /// Stop the daemon. Jobs keep running and are re-adopted by the next daemon.
    Stop,
}

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    match args.command {
        DaemonCommand::Status => {
            let Response::Daemon(info) = Client::connect(home)?.call(Request::DaemonStatus)? else {
                return Err(Error::new("unexpected answer from the daemon"));
            };
            if out.json {
                out.json_line(&info);
            } else {
                out.text(&format!(
                    "pid       {}\nversion   {}\nuptime    {}\nsocket    {}\njobs      {}",
                    info.pid,
                    info.version,
                    crate::render::short_duration(std::time::Duration::from_secs(info.uptime_secs)),
                    info.socket,
                    info.jobs
                ));
            }
        }
        DaemonCommand::Stop => {
            let stopped = match Client::connect_running(home)? {
                Some(mut client) => {
                    client.call(Request::DaemonStop)?;
                    wait_gone(home);
                    true
                }
                None => false,
            };
            if out.json {
                out.json_line(&serde_json::json!({ "stopped": stopped }));
            } else {
                out.text(if stopped { "daemon stopped; jobs keep running" } else { "no daemon was running" });
            }
        }
    }
    Ok(0)
}

/// The daemon answers before it exits; wait until its lock is free so that a `daemon stop`
/// followed at once by another command never races the old daemon.
fn wait_gone(home: &Home) {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(home.lock()) {
        // A blocking lock returns the moment the old daemon's lock is released.
        let _ = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive);
    }
}
