use super::log_of;
use crate::daemon::Ctx;
use crate::error::Result;
use crate::logs::{filter::Compiled, reader};
use crate::protocol::{DiffRequest, Response};
use crate::reconcile::Edit;

/// Lines written since the job's cursor, which then moves to the end of what was read. If
/// another diff moved the cursor meanwhile, read again from the new cursor, so two concurrent
/// diffs never both report the same lines. A diff that hides lines (by stream or regex) has a
/// cursor of its own, so the lines it hid are still new to a plain diff.
pub async fn handle(ctx: &Ctx, req: DiffRequest) -> Result<Response> {
    let filter = Compiled::new(&req.filter)?;
    let key = (req.filter.stream.is_some() || req.filter.regex.is_some())
        .then(|| format!("{:?}|{}", req.filter.stream, req.filter.regex.as_deref().unwrap_or_default()));
    let (id, path) = log_of(ctx, req.job).await?;
    loop {
        let from = ctx.handle.job_by_id(&id).await?.map_or(0, |j| j.obs.cursor(key.as_deref()));
        let (lines, to) =
            reader::read_from(&path, from).map_err(|e| crate::error::Error::context("cannot read log", e))?;
        let (id2, filter_key) = (id.clone(), key.clone());
        if ctx.handle.edit(|reply| Edit::SetCursor { id: id2, filter: filter_key, from, to, reply }).await?? {
            let mut views: Vec<_> = lines.iter().filter(|l| filter.keeps(l)).map(|l| filter.view(l)).collect();
            if let Some(n) = req.lines {
                views = views.split_off(views.len().saturating_sub(n));
            }
            return Ok(Response::Diff { cursor: to, lines: views });
        }
    }
}
