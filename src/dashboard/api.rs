//! `/api/v1`: the jobs, their logs and events, projects and the daemon, as JSON in the shapes the
//! CLI prints when piped. Each handler makes one or two requests to the daemon through
//! [`super::call`]; a failure is answered with a status from its kind and `{"error", "hint"}`.

use super::{App, call, live, projects};
use crate::error::{Error, ErrorKind};
use crate::protocol::{
    DaemonInfo, EventView, JobView, KillTarget, LineFilter, LineView, StatsView, StatusView, Stream, TailRequest,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/daemon", get(daemon))
        .route("/jobs", get(list).post(run))
        .route("/jobs/{job}", get(status).delete(delete))
        .route("/jobs/{job}/kill", post(kill))
        .route("/jobs/{job}/restart", post(restart))
        .route("/jobs/{job}/logs", get(logs))
        .route("/jobs/{job}/logs/follow", get(live::follow_logs))
        .route("/jobs/{job}/events", get(events))
        .route("/jobs/{job}/stats", get(stats))
        .route("/events", get(live::events))
        .route("/projects", get(projects::list))
        .route("/projects/plan", post(projects::plan))
        .route("/projects/up", post(projects::up))
        .route("/projects/down", post(projects::down))
        .route("/projects/{project}/graph", get(projects::graph))
        .route("/openapi.json", get(super::openapi::handle))
}

/// An error as the API answers it.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The body of every error answer.
#[derive(Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: String,
    pub hint: Option<String>,
    /// failed, bad_input, not_found, conflict, unreachable, system or timeout (the CLI's exit
    /// codes 1-7).
    pub kind: String,
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::System => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Failed => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind =
            serde_json::to_value(self.0.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let body = ErrorBody { error: self.0.message, hint: self.0.hint, kind };
        (status_of(self.0.kind), Json(body)).into_response()
    }
}

pub type Answer<T> = Result<Json<T>, ApiError>;

async fn daemon(State(app): State<Arc<App>>) -> Answer<DaemonInfo> {
    Ok(Json(call(&app, |c| c.daemon_status()).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    /// Only the jobs of this workspace.
    pub workspace: Option<String>,
}

async fn list(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Answer<Vec<JobView>> {
    Ok(Json(call(&app, move |c| c.list(q.workspace)).await?))
}

/// What to run: `bgrun run`'s arguments, flags first, then the command.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct RunBody {
    /// e.g. `["--name", "web", "--cwd", "/srv/web", "--", "python3", "-m", "http.server"]`.
    pub args: Vec<String>,
}

async fn run(State(app): State<Arc<App>>, Json(body): Json<RunBody>) -> Result<(StatusCode, Json<JobView>), ApiError> {
    // The spec reads the environment and maybe a settings file: off the server's thread too.
    Ok((StatusCode::CREATED, Json(call(&app, move |c| c.run(crate::cli::run::spec(body.args)?)).await?)))
}

async fn status(State(app): State<Arc<App>>, Path(job): Path<String>) -> Answer<StatusView> {
    Ok(Json(call(&app, move |c| c.status(job)).await?))
}

/// The ids of the jobs a kill stopped, as `bgrun kill` prints them.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct Killed {
    pub killed: Vec<String>,
}

/// The ids of the jobs a delete removed, as `bgrun delete` prints them.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct Removed {
    pub removed: Vec<String>,
}

async fn kill(State(app): State<Arc<App>>, Path(job): Path<String>) -> Answer<Killed> {
    Ok(Json(Killed { killed: call(&app, move |c| c.kill(KillTarget::Job(job), None)).await? }))
}

async fn restart(State(app): State<Arc<App>>, Path(job): Path<String>) -> Answer<JobView> {
    Ok(Json(call(&app, move |c| c.restart(job, false)).await?))
}

async fn delete(State(app): State<Arc<App>>, Path(job): Path<String>) -> Answer<Removed> {
    Ok(Json(Removed { removed: call(&app, move |c| c.delete(Some(job))).await? }))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct LogQuery {
    /// How many of the last lines (default 100).
    pub lines: Option<usize>,
    /// Only this stream.
    pub stream: Option<Stream>,
    /// Only lines matching this regular expression.
    pub grep: Option<String>,
}

impl LogQuery {
    pub fn request(self, job: String) -> TailRequest {
        let filter = LineFilter { stream: self.stream, regex: self.grep, ..LineFilter::default() };
        TailRequest { filter, ..TailRequest::last(job, self.lines.unwrap_or(100)) }
    }
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lines {
    pub lines: Vec<LineView>,
}

async fn logs(State(app): State<Arc<App>>, Path(job): Path<String>, Query(q): Query<LogQuery>) -> Answer<Lines> {
    let request = q.request(job);
    Ok(Json(Lines { lines: call(&app, move |c| c.tail(request)).await? }))
}

async fn events(State(app): State<Arc<App>>, Path(job): Path<String>) -> Answer<Vec<EventView>> {
    Ok(Json(call(&app, move |c| c.status(job)).await?.events))
}

async fn stats(State(app): State<Arc<App>>, Path(job): Path<String>) -> Answer<StatsView> {
    Ok(Json(call(&app, move |c| c.stats(job)).await?))
}
