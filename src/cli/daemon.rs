use super::Output;
use crate::client::Client;
use crate::error::Result;
use crate::home::Home;
use crate::protocol::Request;

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
    /// Run the daemon in the foreground, as an init system does (`bgrun startup`'s unit).
    Run,
}

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    match args.command {
        DaemonCommand::Run => {
            return Err(crate::programs::exec_instead(crate::programs::DAEMON, std::iter::empty()));
        }
        DaemonCommand::Status => {
            let info = Client::connect(home)?.daemon_status()?;
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
                for problem in &info.problems {
                    out.text(&format!("problem   {problem}"));
                }
            }
        }
        DaemonCommand::Stop => {
            let stopped = match Client::connect_running(home)? {
                Some(mut client) => {
                    let info = client.daemon_status()?;
                    let exited = PidFd::open(info.pid as i32);
                    client.call(Request::DaemonStop)?;
                    if let Some(pidfd) = exited {
                        pidfd.wait(std::time::Duration::from_secs(10));
                    }
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

/// A handle on a process that becomes readable when it exits, so `daemon stop` returns only once
/// the old daemon is gone and never races the next command.
struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    fn open(pid: i32) -> Option<PidFd> {
        crate::supervisor::launch::pidfd_open(pid).ok().map(PidFd)
    }

    fn wait(&self, timeout: std::time::Duration) {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(self.0.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ms = nix::poll::PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(nix::poll::PollTimeout::MAX);
        let _ = nix::poll::poll(&mut fds, ms);
    }
}
