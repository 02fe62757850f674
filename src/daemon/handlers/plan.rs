use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::Query;
use crate::spec::JobSpec;

/// What `up` would do to each job, and why; changes nothing.
pub async fn handle(ctx: &Ctx, project: String, jobs: Vec<JobSpec>, only: Vec<String>) -> Result<Response> {
    crate::spec::validate_project(&project, &jobs)?;
    let p = project.clone();
    let changes = ctx.handle.query(|reply| Query::Plan { project: p, jobs, only, reply }).await?;
    Ok(Response::Plan { project, changes })
}
