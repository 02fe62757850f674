//! Projects (bgrun.toml files) in the dashboard: the ones that have jobs, converging one to its
//! file (`up`), what that would do (`plan`), stopping it (`down`), and its dependency graph.

use super::api::{Answer, ApiError};
use super::{App, blocking, call};
use crate::error::Error;
use crate::project::load::{self, Project};
use crate::protocol::{Change, JobView, UpView, WaitFor};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A project that has jobs.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProjectView {
    pub name: String,
    /// Its bgrun.toml, found from its jobs' working directories (null when none is found there).
    pub file: Option<String>,
    pub jobs: Vec<String>,
}

pub async fn list(State(app): State<Arc<App>>) -> Answer<Vec<ProjectView>> {
    // Finding each project's file reads files: on the blocking pool, with the listing.
    Ok(Json(call(&app, |c| Ok(projects(&c.list(None)?))).await?))
}

fn projects(jobs: &[JobView]) -> Vec<ProjectView> {
    let mut by_name: BTreeMap<String, Vec<&JobView>> = BTreeMap::new();
    for job in jobs {
        if let Some(project) = &job.project {
            by_name.entry(project.clone()).or_default().push(job);
        }
    }
    by_name
        .into_iter()
        .map(|(name, jobs)| ProjectView {
            file: jobs.iter().find_map(|j| file_of(&name, &j.cwd)),
            jobs: jobs.iter().map(|j| j.display_name().to_string()).collect(),
            name,
        })
        .collect()
}

/// The bgrun.toml at or above `cwd` that names the project `name`.
fn file_of(name: &str, cwd: &str) -> Option<String> {
    let file = load::find(std::path::Path::new(cwd))?;
    let project = load::load(&file, &load::Options::default()).ok()?;
    (project.name == name).then(|| file.display().to_string())
}

/// Which file, and which of its jobs (all when empty), in which named environment.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct ProjectBody {
    /// The path of the bgrun.toml.
    pub file: String,
    #[serde(default)]
    pub only: Vec<String>,
    /// A named environment of the file (`up --env NAME`).
    pub env: Option<String>,
}

impl ProjectBody {
    /// The file, loaded as `bgrun up` loads it, and the jobs named.
    fn load(&self) -> Result<(Project, Vec<String>), Error> {
        let options = load::Options { inherited: crate::cli::project::inherited_env(), environment: self.env.clone() };
        let project = load::load(std::path::Path::new(&self.file), &options).map_err(|problems| {
            let each: Vec<String> = problems
                .views()
                .into_iter()
                .map(|p| format!("{}:{}:{}: {}", p.file, p.line.unwrap_or(0), p.column.unwrap_or(0), p.message))
                .collect();
            Error::bad_input(each.join("; "))
        })?;
        let only = crate::cli::project::select(&project, &self.only)?;
        Ok((project, only))
    }
}

/// What `bgrun plan` prints.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanView {
    pub project: String,
    pub changes: Vec<Change>,
}

// Each loads the file on the blocking pool, with the request to the daemon.

pub async fn plan(State(app): State<Arc<App>>, Json(body): Json<ProjectBody>) -> Answer<PlanView> {
    let view = call(&app, move |c| {
        let (project, only) = body.load()?;
        let changes = c.plan(project.name.clone(), project.jobs, only)?;
        Ok(PlanView { project: project.name, changes })
    })
    .await?;
    Ok(Json(view))
}

/// As `bgrun up` converges, waiting until the jobs are ready.
pub async fn up(State(app): State<Arc<App>>, Json(body): Json<ProjectBody>) -> Answer<UpView> {
    let home = app.home.clone();
    let view = blocking(move || {
        let (project, only) = body.load()?;
        crate::cli::up::converge(&home, &project, &only, &[], WaitFor::Ready, true, None)
    })
    .await?;
    Ok(Json(view))
}

/// What `bgrun down` prints.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct DownView {
    pub project: String,
    pub stopped: Vec<String>,
}

pub async fn down(State(app): State<Arc<App>>, Json(body): Json<ProjectBody>) -> Answer<DownView> {
    let view = call(&app, move |c| {
        let (project, only) = body.load()?;
        let stopped = c.down(project.name.clone(), only)?;
        Ok(DownView { project: project.name, stopped })
    })
    .await?;
    Ok(Json(view))
}

/// A project's jobs and their `after` edges.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct GraphView {
    pub project: String,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct GraphNode {
    pub job: String,
    pub id: String,
    pub state: String,
}

/// `to` starts after `from` meets `condition` (started, ready, healthy or completed).
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub condition: String,
}

pub async fn graph(State(app): State<Arc<App>>, Path(project): Path<String>) -> Answer<GraphView> {
    let wanted = project.clone();
    let statuses = call(&app, move |c| {
        let ids = c.list(None)?.into_iter().filter(|j| j.project.as_ref() == Some(&wanted)).map(|j| j.id);
        ids.map(|id| c.status(id)).collect::<Result<Vec<_>, _>>()
    })
    .await?;
    if statuses.is_empty() {
        return Err(ApiError(Error::not_found(format!("no job belongs to a project {project:?}"))));
    }
    let mut view = GraphView { project, nodes: Vec::new(), edges: Vec::new() };
    for status in statuses {
        let job = status.name.clone().unwrap_or_else(|| status.id.clone());
        for dependency in status.spec.iter().flat_map(|s| s.after.iter()) {
            view.edges.push(GraphEdge {
                from: dependency.job.clone(),
                to: job.clone(),
                condition: dependency.condition.as_str().to_string(),
            });
        }
        view.nodes.push(GraphNode { job, id: status.id, state: status.state });
    }
    Ok(Json(view))
}
