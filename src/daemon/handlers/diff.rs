use super::log_of;
use super::tail::next_frame;
use crate::daemon::Ctx;
use crate::daemon::conn::{error, send};
use crate::error::Result;
use crate::logs::{filter::Compiled, reader};
use crate::protocol::{DiffRequest, LineView, Response};
use crate::reconcile::Edit;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::net::UnixStream;

/// Lines written since the job's cursor, which moves to the log's end. The cursor moves first,
/// only if no other diff moved it meanwhile (else it starts again from the new cursor), so two
/// concurrent diffs never both report the same lines; then the lines between the two cursors
/// are sent, in as many frames as they take. A diff that hides lines (by stream or regex) has a
/// cursor of its own, so the lines it hid are still new to a plain diff.
pub async fn handle(ctx: &Ctx, req: DiffRequest, stream: &mut UnixStream) -> std::io::Result<()> {
    let (from, to, filter, dir) = match claim(ctx, &req).await {
        Ok(claimed) => claimed,
        Err(e) => return send(stream, error(e)).await,
    };
    let mut reader = reader::Forward::new(&dir, from).until(to);
    // With --lines, only the newest lines: kept while reading, sent at the end.
    let mut newest: VecDeque<LineView> = VecDeque::new();
    loop {
        let (next, lines, end) = match next_frame(reader, &filter, 0).await {
            Ok(frame) => frame,
            Err(e) => return send(stream, error(e)).await,
        };
        reader = next;
        match req.lines {
            Some(n) => {
                newest.extend(lines);
                while newest.len() > n {
                    newest.pop_front();
                }
                if end {
                    return send(stream, Response::Diff { cursor: to, lines: newest.into(), more: false }).await;
                }
            }
            None if end || !lines.is_empty() => {
                send(stream, Response::Diff { cursor: to, lines, more: !end }).await?;
            }
            None => {}
        }
        if end {
            return Ok(());
        }
    }
}

/// Moves the job's cursor (for this filter) to the log's end: where the diff starts and ends.
async fn claim(ctx: &Ctx, req: &DiffRequest) -> Result<(u64, u64, Arc<Compiled>, std::path::PathBuf)> {
    let filter = Arc::new(Compiled::new(&req.filter)?);
    let key = (req.filter.stream.is_some() || req.filter.regex.is_some())
        .then(|| format!("{:?}|{}", req.filter.stream, req.filter.regex.as_deref().unwrap_or_default()));
    let (id, dir) = log_of(ctx, req.job.clone()).await?;
    loop {
        let stored = ctx.handle.job_by_id(&id).await?.map_or(0, |j| j.obs.cursor(key.as_deref()));
        let to = reader::end(&dir);
        let (id2, filter_key) = (id.clone(), key.clone());
        if ctx.handle.edit(|reply| Edit::SetCursor { id: id2, filter: filter_key, from: stored, to, reply }).await?? {
            // A cursor past the end is from a log that was replaced: the diff starts over.
            let from = if stored > to { 0 } else { stored };
            return Ok((from, to, filter, dir));
        }
    }
}
