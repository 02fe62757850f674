use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
}

/// Stops the job (every copy of a job with replicas) and forgets it, its logs too.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let removed = client.delete(Some(args.job.key()?))?;
    super::clean::print_removed(&removed, out);
    Ok(0)
}
