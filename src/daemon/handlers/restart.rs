use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::Edit;

/// A new run of the job from its spec; answers once the new run has a process.
pub async fn handle(ctx: &Ctx, key: String, force: bool) -> Result<Response> {
    let view = ctx.handle.edit(|reply| Edit::Restart { key, force, reply }).await??;
    Ok(Response::Job(view))
}
