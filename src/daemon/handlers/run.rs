use crate::daemon::Ctx;
use crate::error::Result;
use crate::protocol::Response;
use crate::reconcile::Edit;
use crate::spec::JobSpec;

/// Answers once the job has a pid (or could not get one).
pub async fn handle(ctx: &Ctx, spec: JobSpec) -> Result<Response> {
    let view = ctx.handle.edit(|reply| Edit::Run { spec: Box::new(spec), reply }).await??;
    Ok(Response::Job(view))
}
