use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::views::status_view;

/// How many recent events `status` shows.
const EVENTS: usize = 20;

pub async fn handle(ctx: &Ctx, key: String) -> Result<Response> {
    let home = ctx.home.clone();
    let view = ctx
        .handle
        .read(move |r| {
            let job = r.resolve(&key)?;
            let events = r.store.events(&job.id, EVENTS)?;
            let log = home.job_dir(&job.id).join(crate::logs::LOG_FILE).display().to_string();
            Ok::<_, crate::error::Error>(status_view(job, log, events))
        })
        .await??;
    Ok(Response::Status(Box::new(view)))
}
