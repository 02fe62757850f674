use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::views::env_view;

pub async fn handle(ctx: &Ctx, key: String) -> Result<Response> {
    let job = ctx.handle.job(key).await?;
    Ok(Response::Env(env_view(&job)))
}
