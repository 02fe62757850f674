use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::protocol::Response;
use std::io::Write;

/// Writes to the job's stdin, which the job (or, for a PTY job, its supervisor) reads.
/// Non-blocking: a job that stopped reading makes `send` fail rather than hang the daemon.
pub async fn handle(ctx: &Ctx, key: String, data: String) -> Result<Response> {
    let job = ctx.handle.job(key).await?;
    let id = job.id.clone();
    if !job.life().has_process() {
        return Err(Error::new("the job is not running"));
    }
    let mut f = crate::supervisor::files::open_stdin(&ctx.home.job_dir(&id))
        .map_err(|e| Error::context("the job's stdin is closed", e))?;
    f.write_all(data.as_bytes()).map_err(|e| Error::context("cannot write to the job's stdin", e))?;
    Ok(Response::Ok)
}
