use super::log_of;
use crate::daemon::Ctx;
use crate::error::Result;
use crate::logs::{filter::Compiled, reader};
use crate::protocol::{DiffRequest, Response};
use crate::reconcile::Edit;

/// Lines written since the job's cursor, which then moves to the end of what was read. If
/// another diff moved the cursor meanwhile, read again from the new cursor, so two concurrent
/// diffs never both report the same lines.
pub async fn handle(ctx: &Ctx, req: DiffRequest) -> Result<Response> {
    let filter = Compiled::new(&req.filter)?;
    let (id, path) = log_of(ctx, req.job).await?;
    loop {
        let from = ctx.handle.job_by_id(&id).await?.map_or(0, |j| j.obs.diff_cursor);
        let (lines, to) =
            reader::read_from(&path, from).map_err(|e| crate::error::Error::context("cannot read log", e))?;
        let id2 = id.clone();
        if ctx.handle.edit(|reply| Edit::SetCursor { id: id2, from, to, reply }).await?? {
            let mut views: Vec<_> = lines.iter().filter(|l| filter.keeps(l)).map(|l| filter.view(l)).collect();
            if let Some(n) = req.lines {
                views = views.split_off(views.len().saturating_sub(n));
            }
            return Ok(Response::Diff { cursor: to, lines: views });
        }
    }
}
