use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::protocol::Response;
use crate::reconcile::Query;
use crate::reconcile::views::status_view;

/// How many recent events `status` shows.
const EVENTS: usize = 20;

pub async fn handle(ctx: &Ctx, key: String) -> Result<Response> {
    let (job, events) = ctx.handle.query(|reply| Query::History { key, events: EVENTS, reply }).await??;
    let log = ctx.home.job_dir(&job.id).join(crate::logs::LOG_FILE).display().to_string();
    // The view looks up the job's ports in /proc: on the blocking pool, never the reconciler's.
    let view = tokio::task::spawn_blocking(move || status_view(&job, log, events))
        .await
        .map_err(|e| Error::new(format!("cannot build the status: {e}")))?;
    Ok(Response::Status(Box::new(view)))
}
