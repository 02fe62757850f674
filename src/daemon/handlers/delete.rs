use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::Edit;

/// Stops and forgets the job (all jobs when None), answering once they are gone.
pub async fn handle(ctx: &Ctx, key: Option<String>) -> Result<Response> {
    let removed = ctx.handle.edit(|reply| Edit::Delete { key, reply }).await??;
    Ok(Response::Removed { removed })
}
