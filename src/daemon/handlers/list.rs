use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::protocol::Response;
use crate::reconcile::Query;
use crate::reconcile::views::{job_view, tree_root};

pub async fn handle(ctx: &Ctx, workspace: Option<String>) -> Result<Response> {
    let jobs = ctx.handle.query(|reply| Query::Jobs { workspace, reply }).await?;
    let mut views: Vec<_> = jobs.iter().map(|j| (job_view(j), tree_root(j))).collect();
    // /proc is read on the blocking pool, so a listing never delays an edit.
    let ports = ctx.ports.clone();
    let views = tokio::task::spawn_blocking(move || {
        ports.fill(&mut views);
        views
    })
    .await
    .map_err(|e| Error::new(format!("cannot list the jobs' ports: {e}")))?;
    Ok(Response::Jobs { jobs: views.into_iter().map(|(v, _)| v).collect() })
}
