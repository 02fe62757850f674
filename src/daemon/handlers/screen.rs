use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::logs::reader;
use crate::protocol::Response;

/// How much of a PTY job's recent output is replayed to rebuild its screen.
const REPLAY: u64 = 256 * 1024;

/// The job's current screen. For a PTY job this is the terminal as the program drew it (its recent
/// output replayed through a terminal emulator, so a program that redraws in place shows its
/// latest state); for a piped job, its last lines.
pub async fn handle(ctx: &Ctx, key: String, lines: usize) -> Result<Response> {
    let (id, pty, offset) = ctx
        .handle
        .read(move |r| r.resolve(&key).map(|j| (j.id.clone(), j.spec.pty.clone(), j.obs.log_offset)))
        .await??;
    let path = ctx.home.job_dir(&id).join(crate::logs::LOG_FILE);
    let read_err = |e| Error::context("cannot read the job's output", e);
    let Some(size) = pty else {
        let last = reader::read_last(&path, lines, &|_| true).map_err(read_err)?;
        return Ok(Response::Screen { lines: last.iter().map(|l| l.text()).collect() });
    };
    let bytes = reader::terminal_bytes(&path, offset, REPLAY).map_err(read_err)?;
    let (Some(rows), Some(cols)) = (std::num::NonZeroU16::new(size.rows), std::num::NonZeroU16::new(size.cols)) else {
        return Err(Error::new("the job's terminal has no size"));
    };
    let mut term = vt100::Parser::new(rows, cols, 0);
    term.process(&bytes);
    let mut rows: Vec<String> = term.screen().rows(0, size.cols).map(|r| r.trim_end().to_string()).collect();
    while rows.last().is_some_and(String::is_empty) {
        rows.pop();
    }
    let skip = rows.len().saturating_sub(lines);
    Ok(Response::Screen { lines: rows.split_off(skip) })
}
