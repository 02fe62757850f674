//! Edits to the desired state, each answered once it has been applied.

use super::Reconciler;
use crate::error::{Error, Result};
use crate::job::{Desired, Job};
use crate::protocol::{JobView, KillTarget, short_commit};
use crate::spec::JobSpec;
use crate::state::{Ending, Lifecycle, StoppedBy, Then, Why};
use std::time::Duration;
use tokio::sync::oneshot;

pub enum Edit {
    Run {
        spec: Box<JobSpec>,
        reply: oneshot::Sender<Result<JobView>>,
    },
    Kill {
        target: KillTarget,
        grace: Option<Duration>,
        reply: oneshot::Sender<Result<Vec<String>>>,
    },
    Clean {
        workspace: Option<String>,
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Moves a job's diff cursor from `from` to `to`, unless another diff moved it first.
    SetCursor {
        id: String,
        /// The filter whose cursor it is; None for the plain diff's.
        filter: Option<String>,
        from: u64,
        to: u64,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Answers once the job is Ready, or has ended for good (no restart coming).
    Wait {
        id: String,
        reply: oneshot::Sender<Job>,
    },
    /// Converge a project's jobs to its file; answers with what changed, once applied.
    Apply {
        project: String,
        jobs: Vec<JobSpec>,
        only: Vec<String>,
        revive: bool,
        /// Replaced even where their spec is unchanged.
        renew: Vec<String>,
        reply: oneshot::Sender<Vec<(crate::protocol::Change, String)>>,
    },
    /// Stop a project's jobs (or the named ones); answers once they have stopped.
    Down {
        project: String,
        only: Vec<String>,
        reply: oneshot::Sender<Vec<String>>,
    },
    /// A new run of the job from its current spec (the old one is stopped first); answers once
    /// the new run has a process.
    Restart {
        key: String,
        force: bool,
        reply: oneshot::Sender<Result<JobView>>,
    },
    /// Stop and forget the jobs `key` names (all jobs when None), logs included; answers once
    /// they are forgotten.
    Delete {
        key: Option<String>,
        reply: oneshot::Sender<Result<Vec<String>>>,
    },
    /// Resize a PTY job's terminal (the shim applies it and the job gets SIGWINCH).
    Resize {
        id: String,
        cols: u16,
        rows: u16,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Record a deploy of a project, with an event on each of its jobs.
    RecordDeploy {
        deploy: Box<crate::protocol::DeployView>,
        reply: oneshot::Sender<Result<()>>,
    },
}

impl Reconciler {
    pub(super) fn on_edit(&mut self, edit: Edit) {
        match edit {
            Edit::Run { spec, reply } => match self.edit_run(*spec) {
                Ok(id) => self.answer_run_when_launched(id, reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Edit::Kill { target, grace, reply } => match self.edit_kill(&target, grace) {
                Ok((targets, killed)) => {
                    // Done once the runs alive now have ended: a job run again meanwhile (a new
                    // attempt) does not keep the kill waiting.
                    let runs: Vec<(String, u64)> =
                        targets.iter().filter_map(|id| Some((id.clone(), self.jobs.get(id)?.attempt))).collect();
                    let ended = |rec: &Reconciler, (id, attempt): &(String, u64)| {
                        !rec.jobs.get(id).is_some_and(|j| j.attempt == *attempt && j.life().has_process())
                    };
                    self.answer_when_over(runs, ended, reply, Ok(killed));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Edit::Delete { key, reply } => {
                let ids = match key {
                    Some(key) => self.resolve_all(&key),
                    None => Ok(self.jobs.keys().cloned().collect()),
                };
                match ids {
                    Ok(ids) => {
                        for id in &ids {
                            self.remove(id, "deleted on request");
                        }
                        let forgotten = |rec: &Reconciler, id: &String| !rec.jobs.contains_key(id);
                        self.answer_when_over(ids.clone(), forgotten, reply, Ok(ids));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Edit::Clean { workspace, reply } => {
                let _ = reply.send(self.edit_clean(workspace.as_deref()));
            }
            Edit::SetCursor { id, filter, from, to, reply } => {
                let moved = match self.jobs.get_mut(&id) {
                    Some(job) => Ok(job.obs.move_cursor(filter, from, to)),
                    None => Err(Error::new("the job was removed")),
                };
                if moved == Ok(true) {
                    self.save(&id, None);
                }
                let _ = reply.send(moved);
            }
            Edit::Wait { id, reply } => {
                let mut reply = Some(reply);
                self.wait_for(Box::new(move |rec: &mut Reconciler| {
                    let Some(r) = reply.as_ref() else { return true };
                    if r.is_closed() {
                        return true;
                    }
                    let Some(job) = rec.jobs.get(&id) else { return true };
                    let settled = matches!(job.life(), Lifecycle::Ready { .. })
                        || job.life().readiness_gave_up()
                        || job.is_finished();
                    if settled && let Some(r) = reply.take() {
                        let _ = r.send(job.clone());
                    }
                    settled
                }));
            }
            Edit::Apply { project, jobs, only, revive, renew, reply } => {
                let _ = reply.send(self.apply_project(&project, jobs, &only, revive, &renew));
            }
            Edit::Down { project, only, reply } => {
                let ids = self.down_project(&project, &only);
                let stopped = |rec: &Reconciler, id: &String| !rec.jobs.get(id).is_some_and(|j| j.life().has_process());
                self.answer_when_over(ids.clone(), stopped, reply, ids);
            }
            // All copies of a job with replicas restart one after the other (see the plan); the
            // answer comes once the last has a process.
            Edit::Restart { key, force, reply } => match self.resolve_all(&key) {
                Ok(ids) => {
                    for id in &ids {
                        if let Some(job) = self.jobs.get_mut(id) {
                            job.want_new_run();
                            job.force_next |= force;
                            self.save(id, Some(("restart", "restart requested")));
                        }
                    }
                    if let Some(last) = ids.last() {
                        self.answer_run_when_launched(last.clone(), reply);
                    }
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Edit::Resize { id, cols, rows, reply } => {
                if let Some(run) = self.jobs.get(&id).filter(|j| j.spec.pty.is_some()).and_then(|j| j.life().run()) {
                    self.sup.resize(&id, &run, cols, rows);
                }
                let _ = reply.send(());
            }
            Edit::RecordDeploy { deploy, reply } => {
                let ids: Vec<String> = self
                    .jobs
                    .values()
                    .filter(|j| j.spec.project.as_deref() == Some(deploy.project.as_str()))
                    .map(|j| j.id.clone())
                    .collect();
                let (old, new) = (short_commit(&deploy.old), short_commit(&deploy.new));
                let event = format!("{old} → {new} ({}): {}", deploy.target, deploy.outcome());
                let _ = reply.send(self.store.add_deploy(&deploy, &ids, &event));
            }
            Edit::Shutdown { reply } => {
                self.shutting_down = true;
                let _ = reply.send(());
            }
        }
    }

    /// Makes the spec desired-running. Returns the job's id.
    fn edit_run(&mut self, spec: JobSpec) -> Result<String> {
        spec.validate()?;
        if let Some(rid) = &spec.request_id
            && let Some(job) = self.jobs.values().find(|j| j.spec.request_id.as_ref() == Some(rid))
        {
            // The same `run` again, after the daemon died under the first try.
            return Ok(job.id.clone());
        }
        if !spec.cwd.is_dir() {
            return Err(Error::bad_input(format!(
                "working directory {} does not exist (or is not a directory)",
                spec.cwd.display()
            )));
        }
        for dep in spec.after.iter().map(|d| &d.job) {
            if spec.name.as_ref() == Some(dep) {
                return Err(Error::new(format!("--after {dep}: a job cannot wait for itself")));
            }
            if self.find(spec.project.as_deref(), dep).is_none() {
                return Err(Error::new(format!("--after {dep}: no job is named {dep:?}"))
                    .with_hint("start the dependency first, or check the name with `bgrun list`"));
            }
        }
        if let Some(name) = &spec.name
            && let Some(existing) = self.find(spec.project.as_deref(), name)
        {
            let id = existing.id.clone();
            // `run --name X` while X is alive is idempotent: it answers with the existing job.
            if existing.state().is_alive() && existing.desired == Desired::Running {
                return Ok(id);
            }
            if let Some(job) = self.jobs.get_mut(&id) {
                job.set_spec(spec);
                job.want_new_run();
                self.save(&id, Some(("run", "run again on request")));
            }
            return Ok(id);
        }
        Ok(self.create(spec))
    }

    /// Answers a `run` once its launch has succeeded or failed. A first launch that fails leaves
    /// no job behind.
    fn answer_run_when_launched(&mut self, id: String, reply: oneshot::Sender<Result<JobView>>) {
        let mut reply = Some(reply);
        self.wait_for(Box::new(move |rec: &mut Reconciler| {
            let Some(job) = rec.jobs.get(&id) else {
                if let Some(r) = reply.take() {
                    let _ = r.send(Err(Error::new("the job was removed before it started")));
                }
                return true;
            };
            // Launching, or an older run still being stopped to make way for this one.
            let launching = matches!(job.life(), Lifecycle::Starting { shim: Some(_) })
                || (job.life().has_process() && job.obs.generation < job.generation);
            if launching {
                return false;
            }
            let never_ran = matches!(job.life().ending(), Some(Ending { why: Why::SpawnFailed { .. }, .. }))
                && !job.obs.ever_spawned;
            let answer = if never_ran {
                let reason = job.life().reason();
                rec.forget(&id);
                Err(Error::new(reason))
            } else {
                Ok(super::views::job_view(job))
            };
            if let Some(r) = reply.take() {
                let _ = r.send(answer);
            }
            true
        }));
    }

    /// Makes the targeted jobs desired-stopped. Returns every targeted id and the ones that
    /// were alive (those `kill` reports).
    fn edit_kill(&mut self, target: &KillTarget, grace: Option<Duration>) -> Result<(Vec<String>, Vec<String>)> {
        let now = self.now();
        let targets: Vec<String> = match target {
            KillTarget::Job(key) => self.resolve_all(key)?,
            KillTarget::Workspace(ws) => self
                .jobs
                .values()
                .filter(|j| j.spec.workspace.as_deref() == Some(ws.as_str()))
                .map(|j| j.id.clone())
                .collect(),
        };
        let mut killed = Vec::new();
        for id in &targets {
            let Some(job) = self.jobs.get_mut(id) else { continue };
            if job.state().is_alive() || matches!(job.life(), Lifecycle::BackingOff { .. }) {
                killed.push(id.clone());
            }
            let changed = want_stopped(job, grace, StoppedBy::Kill, now);
            self.release_unused_sockets(id);
            if changed {
                self.save(id, Some(("kill", "stop requested")));
            }
        }
        Ok((targets, killed))
    }

    /// Forgets every finished job (optionally of one workspace), logs included.
    fn edit_clean(&mut self, workspace: Option<&str>) -> Vec<String> {
        let removable: Vec<String> = self
            .jobs
            .values()
            .filter(|j| workspace.is_none_or(|ws| j.spec.workspace.as_deref() == Some(ws)))
            .filter(|j| j.is_finished())
            .map(|j| j.id.clone())
            .collect();
        for id in &removable {
            self.forget(id);
        }
        removable
    }

    /// Removes a job from memory, the database and the disk.
    pub(super) fn forget(&mut self, id: &str) {
        self.jobs.remove(id);
        self.sup.remove(id);
        let result = self.store.delete(id);
        self.note_write(id, result);
    }
}

/// Makes a job desired stopped (a new generation, no restart pending): a restart backoff ends at
/// once, and a job that has no process yet ends without one. False if it was desired stopped
/// already.
pub(super) fn want_stopped(job: &mut Job, grace: Option<Duration>, by: StoppedBy, now: u64) -> bool {
    if job.desired == Desired::Stopped {
        return false;
    }
    job.desired = Desired::Stopped;
    job.generation += 1;
    job.stop_grace = grace;
    // Both moves are in the table: a backoff is an ending already, a waiting job never ran.
    match job.life() {
        Lifecycle::BackingOff { end, .. } => {
            // Only a kill is said to have cancelled it; down and removal stop the job outright.
            let then = if by == StoppedBy::Kill { Then::RestartCancelled } else { Then::Stays };
            job.obs.life = Lifecycle::Ended { end: end.clone(), then };
        }
        Lifecycle::Waiting { .. } | Lifecycle::Starting { shim: None } => {
            job.obs.life = Lifecycle::Ended { end: Ending::new(Why::NeverStarted { by }, now), then: Then::Stays };
        }
        _ => {}
    }
    true
}
