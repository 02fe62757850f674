use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::views::job_view;

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
            jobs.into_iter().map(job_view).collect()
        })
        .await?;
    Ok(Response::Jobs { jobs })
}
