use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::logs::reader;
use crate::protocol::Response;

/// The job's current screen. For a PTY job this is the terminal as the program drew it, as the
/// terminal emulator its shim feeds every byte to holds it now (at any age, at its current size);
/// for a piped job, its last lines.
pub async fn handle(ctx: &Ctx, key: String, lines: usize) -> Result<Response> {
    let job = ctx.handle.job(key).await?;
    let (id, pty, run_start) = (job.id, job.spec.pty, job.obs.log_cursor);
    let dir = ctx.home.job_dir(&id);
    let read_err = |e| Error::context("cannot read the job's output", e);
    let Some(size) = pty else {
        let last = reader::read_last(&dir, lines, &|_| true).map_err(read_err)?;
        return Ok(Response::Screen { lines: last.iter().map(|l| l.text()).collect() });
    };
    // The live terminal the job's shim keeps; a replay of recent output for a run whose shim
    // kept none (one started by an earlier bgrun).
    let mut rows = match crate::supervisor::files::read_screen(&dir) {
        Some(screen) => screen.lines,
        None => {
            let term = crate::logs::terminal::replay(&dir, run_start, size.cols, size.rows).map_err(read_err)?;
            term.screen().rows(0, size.cols).map(|r| r.trim_end().to_string()).collect()
        }
    };
    while rows.last().is_some_and(String::is_empty) {
        rows.pop();
    }
    let skip = rows.len().saturating_sub(lines);
    Ok(Response::Screen { lines: rows.split_off(skip) })
}
