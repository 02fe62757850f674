use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::{Response, WaitView};
use crate::reconcile::Edit;
use crate::state::JobState;
use std::time::{Duration, Instant};

/// Answers when the job is ready, at once if it has already ended for good, or at the timeout.
pub async fn handle(ctx: &Ctx, key: String, timeout: Duration) -> Result<Response> {
    let started = Instant::now();
    let id = ctx.handle.job(key).await?.id;
    let settled = tokio::time::timeout(timeout, ctx.handle.edit(|reply| Edit::Wait { id, reply })).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let view = match settled {
        Ok(job) => {
            let job = job?;
            // A one-shot is ready once it has exited 0.
            let ready = job.state() == JobState::Ready || (job.spec.oneshot && job.state() == JobState::Exited);
            WaitView {
                ready,
                elapsed_ms,
                exit_code: job.life().ending().and_then(|e| e.code),
                // As the contract shows: a state only for a job that has ended (a readiness
                // timeout leaves it running, with no state to report).
                state: job.life().ending().filter(|_| !ready).map(|_| job.state().as_str().to_string()),
            }
        }
        Err(_) => WaitView { ready: false, elapsed_ms, exit_code: None, state: None },
    };
    Ok(Response::Wait(view))
}
