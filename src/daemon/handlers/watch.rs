use super::client_gone;
use crate::daemon::Ctx;
use crate::daemon::conn::{error, send};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::time::Instant;

/// Frames go out at most this often: a burst of passes (an `up` of many jobs) becomes a few
/// frames, not one per pass.
const AT_MOST_EVERY: Duration = Duration::from_millis(50);
/// A job opens or closes a port without the reconciler noticing (no pass): looked at this often.
const PORTS_EVERY: Duration = Duration::from_secs(2);

/// `watch`: the job list now, then again after every pass that changed it, until the client
/// goes away. A list equal to the last one sent is not sent again.
pub async fn handle(ctx: &Ctx, workspace: Option<String>, stream: &mut UnixStream) -> std::io::Result<()> {
    let mut changes = ctx.handle.changes();
    let mut last: Option<Vec<u8>> = None;
    let mut sent_at = Instant::now() - AT_MOST_EVERY;
    loop {
        tokio::time::sleep_until(sent_at + AT_MOST_EVERY).await;
        changes.borrow_and_update();
        let frame = match super::list::frame(ctx, workspace.clone()).await {
            Ok(frame) => frame,
            Err(e) => return send(stream, error(e)).await,
        };
        if last.as_ref() != Some(&frame) {
            crate::protocol::write_frame_async(stream, &frame).await?;
            sent_at = Instant::now();
            last = Some(frame);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return Ok(()) },
            _ = tokio::time::sleep(PORTS_EVERY) => {}
            _ = client_gone(stream) => return Ok(()),
        }
    }
}
