use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::{DaemonInfo, Response, VERSION};
use crate::reconcile::Query;

pub async fn handle(ctx: &Ctx) -> Result<Response> {
    let state = ctx.handle.query(|reply| Query::Daemon { reply }).await?;
    Ok(Response::Daemon(DaemonInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: VERSION,
        uptime_secs: ctx.started.elapsed().as_secs(),
        socket: ctx.home.socket().display().to_string(),
        home: ctx.home.root().display().to_string(),
        jobs: state.jobs,
        passes: *ctx.handle.changes().borrow(),
        problems: state.problems,
    }))
}
