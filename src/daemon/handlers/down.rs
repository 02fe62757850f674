use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::Edit;

/// Stops a project's jobs, dependents first; answers once they have all stopped.
pub async fn handle(ctx: &Ctx, project: String, only: Vec<String>) -> Result<Response> {
    let stopped = ctx.handle.edit(|reply| Edit::Down { project, only, reply }).await?;
    Ok(Response::Down { stopped })
}
