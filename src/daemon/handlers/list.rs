use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::views::{job_view, tree_root};

pub async fn handle(ctx: &Ctx, workspace: Option<String>) -> Result<Response> {
    let jobs = ctx
        .handle
        .read(move |r| {
            let mut jobs: Vec<_> = r
                .jobs
                .values()
                .filter(|j| workspace.as_ref().is_none_or(|ws| j.spec.workspace.as_ref() == Some(ws)))
                .collect();
            jobs.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
            jobs.into_iter().map(|j| (job_view(j), tree_root(j))).collect::<Vec<_>>()
        })
        .await?;
    // /proc is read here, not in the reconciler, so a listing never delays an edit.
    let mut jobs = jobs;
    ctx.ports.fill(&mut jobs);
    Ok(Response::Jobs { jobs: jobs.into_iter().map(|(v, _)| v).collect() })
}
