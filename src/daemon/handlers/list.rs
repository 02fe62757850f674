use crate::daemon::Ctx;
use crate::daemon::conn::{error, send};
use crate::error::Error;
use crate::protocol::{Response, ResponseFrame, VERSION};
use crate::reconcile::Query;
use crate::reconcile::views::{PortCache, PortsByRoot};
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;

/// The last listing sent, as sent. A `list` after another, with no change between (no pass of the
/// reconciler, no port opened or closed), sends it again rather than building and encoding every
/// job's view once more (most of a listing's cost: about 3 ms with 1000 jobs).
#[derive(Default)]
pub struct Listings(Mutex<Option<Listing>>);

#[derive(Clone)]
struct Listing {
    /// The reconciler's pass count when the jobs were asked for.
    pass: u64,
    workspace: Option<String>,
    roots: Vec<i32>,
    ports: PortsByRoot,
    frame: Arc<Vec<u8>>,
}

pub async fn handle(ctx: &Ctx, workspace: Option<String>, stream: &mut UnixStream) -> std::io::Result<()> {
    match frame(ctx, workspace).await {
        Ok(frame) => crate::protocol::write_frame_async(stream, &frame).await,
        Err(e) => send(stream, error(e)).await,
    }
}

/// The `jobs` answer as it goes on the wire: the last one again while nothing has changed.
pub async fn frame(ctx: &Ctx, workspace: Option<String>) -> crate::error::Result<Arc<Vec<u8>>> {
    let pass = *ctx.handle.changes().borrow();
    let last = ctx.listings.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(last) = last.filter(|l| l.pass == pass && l.workspace == workspace) {
        let roots = last.roots.clone();
        if ports_of(&ctx.ports, roots).await.is_ok_and(|ports| ports == last.ports) {
            return Ok(last.frame);
        }
    }
    let listing = listing(ctx, pass, workspace).await?;
    let frame = listing.frame.clone();
    *ctx.listings.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(listing);
    Ok(frame)
}

async fn listing(ctx: &Ctx, pass: u64, workspace: Option<String>) -> crate::error::Result<Listing> {
    let asked = workspace.clone();
    let views = ctx.handle.query(|reply| Query::Views { workspace: asked, reply }).await?;
    let roots: Vec<i32> = views.iter().filter_map(|(_, root)| *root).collect();
    let ports = ports_of(&ctx.ports, roots.clone()).await?;
    let jobs = views
        .into_iter()
        .map(|(mut view, root)| {
            if let Some(found) = root.and_then(|r| ports.get(&r)) {
                view.ports = found.clone();
            }
            view
        })
        .collect();
    let frame = ResponseFrame { v: VERSION, response: Response::Jobs { jobs } };
    let frame = serde_json::to_vec(&frame).map_err(|e| Error::new(format!("cannot encode the list: {e}")))?;
    Ok(Listing { pass, workspace, roots, ports, frame: Arc::new(frame) })
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
    let Ok(views) = ctx.handle.query(|reply| Query::Views { workspace: None, reply }).await else { return };
    let _ = ports_of(&ctx.ports, views.iter().filter_map(|(_, root)| *root).collect()).await;
}
