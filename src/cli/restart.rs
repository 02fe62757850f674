use super::{JobArg, Output};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::{Request, Response};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
}

/// Stops the job (SIGTERM, then SIGKILL after its grace) and starts it again, same id and log.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let Response::Job(job) = client.call(Request::Restart { job: args.job.key()? })? else {
        return Err(Error::new("unexpected answer from the daemon"));
    };
    if out.json {
        out.json_line(&job);
    } else {
        out.text(&format!("{} restarted, pid {}", job.name.as_deref().unwrap_or(&job.id[..8]), job.pid.unwrap_or(0)));
    }
    Ok(0)
}
