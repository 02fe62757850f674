use crate::daemon::Ctx;
use crate::daemon::conn::{error, send};
use crate::error::Error;
use crate::reconcile::Query;
use crate::reconcile::views::{PortCache, PortsByRoot};
use std::sync::Arc;
use tokio::net::UnixStream;

pub async fn handle(ctx: &Ctx, workspace: Option<String>, stream: &mut UnixStream) -> std::io::Result<()> {
    match frame(ctx, workspace).await {
        Ok(frame) => crate::protocol::write_frame_async(stream, &frame).await,
        Err(e) => send(stream, error(e)).await,
    }
}

/// The `jobs` answer as it goes on the wire: each job as the reconciler last wrote it (see
/// `reconcile::jobs`), with the ports its process tree listens on.
pub async fn frame(ctx: &Ctx, workspace: Option<String>) -> crate::error::Result<Vec<u8>> {
    let listing = ctx.handle.query(|reply| Query::Listing { workspace, reply }).await?;
    let ports = ports_of(&ctx.ports, listing.roots()).await?;
    Ok(listing.with_ports(&ports))
}

/// The ports of the trees of `roots`. /proc is read on the blocking pool, so a listing never
/// delays an edit.
async fn ports_of(cache: &Arc<PortCache>, roots: Vec<i32>) -> crate::error::Result<PortsByRoot> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || cache.ports(&roots))
        .await
        .map_err(|e| Error::new(format!("cannot list the jobs' ports: {e}")))
}

/// Looks at the jobs' ports once, when the daemon starts: the first `list` then finds every
/// listening socket explained and needs no look at /proc (see [`PortCache`]).
pub async fn warm_ports(ctx: &Ctx) {
    let Ok(listing) = ctx.handle.query(|reply| Query::Listing { workspace: None, reply }).await else { return };
    let _ = ports_of(&ctx.ports, listing.roots()).await;
}
