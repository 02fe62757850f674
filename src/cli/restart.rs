use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
    /// Before starting, stop any process of yours that holds the job's ports.
    #[arg(long)]
    pub force: bool,
}

/// Stops the job (SIGTERM, then SIGKILL after its grace) and starts it again, same id and log.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let job = client.restart(args.job.key()?, args.force)?;
    // The new run could not start (its command, a port, a container in the way): say why.
    if job.pid.is_none() && job.state == "crashed" {
        return Err(crate::error::Error::new(format!("{} did not start: {}", job.display_name(), job.reason)));
    }
    if out.json {
        out.json_line(&job);
    } else {
        out.text(&format!("{} restarted, pid {}", job.display_name(), job.pid.unwrap_or(0)));
    }
    Ok(0)
}
