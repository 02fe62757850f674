//! Questions about the current state, each with its reply type. The answers are snapshots
//! (clones): handlers build wire views from them outside the actor, so a slow view (one that
//! reads /proc) never delays an edit.

use super::Reconciler;
use crate::error::Result;
use crate::job::Job;
use crate::protocol::{Change, EventView};
use crate::spec::JobSpec;
use crate::state::Lifecycle;
use tokio::sync::oneshot::Sender;

pub enum Query {
    /// The job a key names (id, name, project/name, or id prefix).
    Job {
        key: String,
        reply: Sender<Result<Job>>,
    },
    /// Jobs by id, in the order asked; None for one that no longer exists.
    ByIds {
        ids: Vec<String>,
        reply: Sender<Vec<Option<Job>>>,
    },
    /// How jobs are getting on (lighter than whole jobs: `up` asks after every pass).
    Progress {
        ids: Vec<String>,
        reply: Sender<Vec<Option<Progress>>>,
    },
    /// How `list` shows every job (of one workspace), oldest first, as it goes on the wire
    /// (see [`super::jobs`]); a snapshot of each job would copy its whole spec and environment.
    Listing {
        workspace: Option<String>,
        reply: Sender<super::views::Listing>,
    },
    /// Every job that has a process now.
    Running {
        reply: Sender<Vec<Job>>,
    },
    /// A job and its most recent `events`.
    History {
        key: String,
        events: usize,
        reply: Sender<Result<(Job, Vec<EventView>)>>,
    },
    /// What `up` would change for a project, without changing anything.
    Plan {
        project: String,
        jobs: Vec<JobSpec>,
        only: Vec<String>,
        reply: Sender<Vec<Change>>,
    },
    /// A project's most recent deploys, newest first.
    Deploys {
        project: String,
        limit: usize,
        reply: Sender<Result<Vec<crate::protocol::DeployView>>>,
    },
    Daemon {
        reply: Sender<DaemonState>,
    },
}

/// Where a job stands, for those who follow it (through a change, or its output as it comes):
/// its lifecycle, and whether a newer spec than its current run's is yet to run. Light: asked
/// after every pass or every write, it copies no spec.
pub struct Progress {
    pub life: Lifecycle,
    pub stale: bool,
    /// Ended, and nothing will run it again by itself ([`crate::job::Job::is_finished`]).
    pub finished: bool,
    /// The new spec's run failed beside the old one, which goes on: why.
    pub replace_failed: Option<String>,
    /// A run replaced start-first has not exited yet.
    pub retiring: bool,
}

/// The reconciler's side of `daemon status`.
pub struct DaemonState {
    pub jobs: usize,
    pub problems: Vec<String>,
}

impl Reconciler {
    pub(super) fn answer(&mut self, query: Query) {
        match query {
            Query::Job { key, reply } => {
                let _ = reply.send(self.resolve(&key).cloned());
            }
            Query::Progress { ids, reply } => {
                let progress = ids
                    .iter()
                    .map(|id| {
                        let job = self.jobs.get(id)?;
                        Some(Progress {
                            life: job.life().clone(),
                            stale: job.obs.generation < job.generation,
                            finished: job.is_finished(),
                            replace_failed: job.replace_failed().map(str::to_string),
                            retiring: job.retiring.is_some(),
                        })
                    })
                    .collect();
                let _ = reply.send(progress);
            }
            Query::ByIds { ids, reply } => {
                let _ = reply.send(ids.iter().map(|id| self.jobs.get(id).cloned()).collect());
            }
            Query::Listing { workspace, reply } => {
                let _ = reply.send(self.jobs.listing(workspace.as_deref()));
            }
            Query::Running { reply } => {
                let _ = reply.send(self.jobs.values().filter(|j| j.life().pid().is_some()).cloned().collect());
            }
            Query::History { key, events, reply } => {
                let answer = self.resolve(&key).and_then(|job| Ok((job.clone(), self.store.events(&job.id, events)?)));
                let _ = reply.send(answer);
            }
            Query::Plan { project, jobs, only, reply } => {
                let _ = reply.send(self.changes(&project, &jobs, &only, true, &[]));
            }
            Query::Deploys { project, limit, reply } => {
                let _ = reply.send(self.store.deploys(&project, limit));
            }
            Query::Daemon { reply } => {
                let _ = reply.send(DaemonState { jobs: self.jobs.len(), problems: self.problems.describe() });
            }
        }
    }
}
