use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::{DeployView, Response};
use crate::reconcile::{Edit, Query};

/// Records a deploy the CLI made (the daemon keeps the history; git is the CLI's business).
pub async fn record(ctx: &Ctx, deploy: Box<DeployView>) -> Result<Response> {
    ctx.handle.edit(|reply| Edit::RecordDeploy { deploy, reply }).await??;
    Ok(Response::Ok)
}

pub async fn history(ctx: &Ctx, project: String, limit: usize) -> Result<Response> {
    let deploys = ctx.handle.query(|reply| Query::Deploys { project, limit, reply }).await??;
    Ok(Response::Deploys { deploys })
}
