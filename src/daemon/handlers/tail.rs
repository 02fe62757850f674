use super::log_of;
use crate::daemon::Ctx;
use crate::daemon::conn::{error, send};
use crate::error::{Error, Result};
use crate::logs::filter::{Compiled, line_level};
use crate::logs::reader::{self, Forward};
use crate::protocol::{DigestView, LineView, Response, TailRequest};
use std::sync::Arc;
use tokio::net::UnixStream;

/// A frame of lines holds at most this many lines, or about this many bytes of them: a large
/// answer comes in several frames, never cut.
const FRAME_LINES: usize = 5_000;
const FRAME_BYTES: usize = 4 << 20;

fn read_err(e: std::io::Error) -> Error {
    Error::context("cannot read the job's log", e)
}

/// Runs a log read on the blocking pool: a large log must not hold up the daemon's other work.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::new(format!("log reader failed: {e}")))?.map_err(read_err)
}

/// The next lines of `reader` (numbered `first` or later, kept by the filter), up to one frame's
/// worth; at the log's end (or the reader's limit) its unfinished lines too. True at the end.
pub async fn next_frame(reader: Forward, filter: &Arc<Compiled>, first: u64) -> Result<(Forward, Vec<LineView>, bool)> {
    let filter = filter.clone();
    blocking(move || {
        let mut reader = reader;
        let (lines, end) = reader.read_to_end(FRAME_LINES, FRAME_BYTES)?;
        let views = lines.iter().filter(|l| l.number >= first && filter.keeps(l)).map(|l| filter.view(l)).collect();
        Ok((reader, views, end))
    })
    .await
}

/// `tail` (without --follow): the last lines, in as many frames as they take.
pub async fn handle(ctx: &Ctx, req: TailRequest, stream: &mut UnixStream) -> std::io::Result<()> {
    let prepared = async {
        let filter = Arc::new(Compiled::new(&req.filter)?);
        let (_, dir) = log_of(ctx, req.job.clone()).await?;
        let keep = filter.clone();
        let lines = req.lines;
        let start = blocking(move || {
            let end = reader::end(&dir);
            let (cursor, first) = reader::locate_last(&dir, lines, &|l| keep.keeps(l), end)?;
            Ok((Forward::new(&dir, cursor).until(end), first))
        })
        .await?;
        Ok::<_, Error>((start, filter))
    };
    let ((mut reader, first), filter) = match prepared.await {
        Ok(ready) => ready,
        Err(e) => return send(stream, error(e)).await,
    };
    loop {
        let (next, lines, end) = match next_frame(reader, &filter, first).await {
            Ok(frame) => frame,
            Err(e) => return send(stream, error(e)).await,
        };
        reader = next;
        if end || !lines.is_empty() {
            send(stream, Response::Lines { lines, more: !end }).await?;
        }
        if end {
            return Ok(());
        }
    }
}

/// `tail --digest`: counts of errors and warnings over the whole log, with the last of each, read
/// in batches.
pub async fn digest(ctx: &Ctx, req: TailRequest) -> Result<Response> {
    let filter = Compiled::new(&req.filter)?;
    let (_, dir) = log_of(ctx, req.job).await?;
    blocking(move || {
        let mut d = DigestView { lines: 0, errors: 0, warnings: 0, last_error: None, last_warning: None };
        let mut reader = Forward::new(&dir, 0);
        loop {
            let (lines, end) = reader.read_to_end(FRAME_LINES, FRAME_BYTES)?;
            for line in lines.iter().filter(|l| filter.keeps(l)) {
                d.lines += 1;
                let text = crate::logs::filter::strip_ansi(&line.text());
                match line_level(&text) {
                    Some(2) => {
                        d.errors += 1;
                        d.last_error = Some(text);
                    }
                    Some(_) => {
                        d.warnings += 1;
                        d.last_warning = Some(text);
                    }
                    None => {}
                }
            }
            if end {
                return Ok(Response::Digest(d));
            }
        }
    })
    .await
}

/// `tail --follow`: the last lines, then new lines as they are written (woken by inotify on the
/// job's directory), across restarts, until the job is finished (ended with no restart coming,
/// or killed) or the client goes away.
pub async fn follow(ctx: &Ctx, req: TailRequest, stream: &mut UnixStream) -> std::io::Result<()> {
    let prepared = async {
        let filter = Arc::new(Compiled::new(&req.filter)?);
        let (id, dir) = log_of(ctx, req.job.clone()).await?;
        let wake = ctx.logs.subscribe(&dir).map_err(|e| Error::context("cannot watch the log", e))?;
        let keep = filter.clone();
        let (lines, path) = (req.lines, dir.clone());
        let (cursor, first) = blocking(move || reader::locate_last(&path, lines, &|l| keep.keeps(l), u64::MAX)).await?;
        Ok::<_, Error>((filter, id, Forward::new(&dir, cursor), first, wake))
    };
    let (filter, id, mut reader, mut first, mut wake) = match prepared.await {
        Ok(p) => p,
        Err(e) => return send(stream, error(e)).await,
    };
    let mut changes = ctx.handle.changes();
    // The last lines go out in full (their last frame says no `more`, even if empty), then each
    // wake-up's new lines.
    let mut initial = true;
    loop {
        // The state first: once the job has ended its shim has finished the log, so the reads
        // below are complete and the last ones.
        let job = ctx.handle.progress(&id).await;
        loop {
            let (next, lines, end) = match next_frame(reader, &filter, first).await {
                Ok(frame) => frame,
                Err(e) => return send(stream, error(e)).await,
            };
            reader = next;
            if !lines.is_empty() || (end && initial) {
                send(stream, Response::Lines { lines, more: !end }).await?;
            }
            if end {
                break;
            }
        }
        (first, initial) = (0, false);
        match job {
            // Across restarts: the follow ends once nothing will run the job again by itself.
            Ok(Some(j)) if !j.finished => {}
            Ok(Some(j)) => return send(stream, Response::End { state: j.life.state().as_str().into() }).await,
            _ => return send(stream, Response::End { state: "removed".into() }).await,
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = changes.changed() => {}
            _ = super::client_gone(stream) => return Ok(()),
        }
    }
}
