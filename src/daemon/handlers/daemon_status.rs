use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::{DaemonInfo, Response, VERSION};

pub async fn handle(ctx: &Ctx) -> Result<Response> {
    let jobs = ctx.handle.read(|r| r.jobs.len()).await?;
    Ok(Response::Daemon(DaemonInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: VERSION,
        uptime_secs: ctx.started.elapsed().as_secs(),
        socket: ctx.home.socket().display().to_string(),
        home: ctx.home.root().display().to_string(),
        jobs,
        problems: crate::reconcile::problems::snapshot().describe(),
    }))
}
