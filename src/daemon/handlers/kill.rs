use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::{KillTarget, Response};
use crate::reconcile::Edit;
use std::time::Duration;

/// Answers once every targeted job has stopped: no process of theirs is left.
pub async fn handle(ctx: &Ctx, target: KillTarget, grace_ms: Option<u64>) -> Result<Response> {
    let grace = grace_ms.map(Duration::from_millis);
    let killed = ctx.handle.edit(|reply| Edit::Kill { target, grace, reply }).await??;
    Ok(Response::Killed { killed })
}
