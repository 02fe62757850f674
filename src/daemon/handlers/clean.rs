use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::Edit;

pub async fn handle(ctx: &Ctx, workspace: Option<String>) -> Result<Response> {
    let removed = ctx.handle.edit(|reply| Edit::Clean { workspace, reply }).await?;
    Ok(Response::Removed { removed })
}
