//! Edits to the desired state, each answered once it has been applied.

use super::Reconciler;
use crate::error::{Error, Result};
use crate::job::{Desired, Job};
use crate::protocol::{JobView, KillTarget};
use crate::spec::JobSpec;
use crate::state::JobState;
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
        from: u64,
        to: u64,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Answers once the job is Ready, or has ended for good (no restart coming).
    Wait {
        id: String,
        reply: oneshot::Sender<crate::job::Job>,
    },
    /// Converge a project's jobs to its file; answers with what changed, once applied.
    Apply {
        project: String,
        jobs: Vec<JobSpec>,
        only: Vec<String>,
        revive: bool,
        reply: oneshot::Sender<Vec<(super::project::Change, String)>>,
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
        reply: oneshot::Sender<Result<JobView>>,
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
                    let mut reply = Some(reply);
                    self.wait_for(Box::new(move |rec: &mut Reconciler| {
                        let done = runs.iter().all(|(id, attempt)| {
                            rec.jobs.get(id).is_none_or(|j| j.attempt != *attempt || j.obs.state.is_terminal())
                        });
                        if done && let Some(r) = reply.take() {
                            let _ = r.send(Ok(killed.clone()));
                        }
                        done
                    }))
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Edit::Clean { workspace, reply } => {
                let _ = reply.send(self.edit_clean(workspace.as_deref()));
            }
            Edit::SetCursor { id, from, to, reply } => {
                let moved = match self.jobs.get_mut(&id) {
                    Some(job) if job.obs.diff_cursor == from => {
                        job.obs.diff_cursor = to;
                        Ok(true)
                    }
                    Some(_) => Ok(false),
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
                    let settled = job.obs.state == JobState::Ready
                        || job.obs.ready_timed_out
                        || (job.obs.state.is_terminal()
                            && job.timers.restart_at.is_none()
                            && !(job.desired == Desired::Running && job.obs.generation < job.generation));
                    if settled && let Some(r) = reply.take() {
                        let _ = r.send(job.clone());
                    }
                    settled
                }));
            }
            Edit::Apply { project, jobs, only, revive, reply } => {
                let _ = reply.send(self.apply_project(&project, jobs, &only, revive));
            }
            Edit::Down { project, only, reply } => {
                let ids = self.down_project(&project, &only);
                let mut reply = Some(reply);
                self.wait_for(Box::new(move |rec: &mut Reconciler| {
                    let done = ids.iter().all(|id| rec.jobs.get(id).is_none_or(|j| j.obs.state.is_terminal()));
                    if done && let Some(r) = reply.take() {
                        let _ = r.send(ids.clone());
                    }
                    done
                }));
            }
            Edit::Restart { key, reply } => match self.resolve(&key).map(|j| j.id.clone()) {
                Ok(id) => {
                    self.jobs.get_mut(&id).expect("resolved").want_new_run();
                    self.save(&id, Some(("restart", "restart requested")));
                    self.answer_run_when_launched(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Edit::Resize { id, cols, rows, reply } => {
                if let Some(run) = self.jobs.get(&id).filter(|j| j.spec.pty.is_some()).and_then(|j| j.obs.run) {
                    crate::supervisor::launch::resize_pty(&self.home.job_dir(&id), run.shim_pid, cols, rows);
                }
                let _ = reply.send(());
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
        for dep in &spec.after {
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
            if existing.obs.state.is_alive() && existing.desired == Desired::Running {
                return Ok(id);
            }
            let job = self.jobs.get_mut(&id).expect("found above");
            job.spec = spec;
            job.want_new_run();
            self.save(&id, Some(("run", "run again on request")));
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
            let has_run = job.obs.run.is_some();
            // Launching, or an older run still being stopped to make way for this one.
            let launching = (job.obs.state == JobState::Starting && has_run)
                || (job.obs.state.is_alive() && has_run && job.obs.generation < job.generation);
            if launching {
                return false;
            }
            let answer = if job.obs.state == JobState::Crashed && !job.obs.ever_spawned {
                let reason = job.obs.reason.clone();
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
        let targets: Vec<String> = match target {
            KillTarget::Job(key) => vec![self.resolve(key)?.id.clone()],
            KillTarget::Workspace(ws) => self
                .jobs
                .values()
                .filter(|j| j.spec.workspace.as_deref() == Some(ws.as_str()))
                .map(|j| j.id.clone())
                .collect(),
        };
        let mut killed = Vec::new();
        for id in &targets {
            let job = self.jobs.get_mut(id).expect("resolved above");
            if job.obs.state.is_alive() || job.timers.restart_at.is_some() {
                killed.push(id.clone());
            }
            // A kill during a restart backoff ends the loop at once.
            if job.cancel_restart() {
                job.obs.reason =
                    format!("{}; restart cancelled by kill", job.obs.reason.split("; restarting").next().unwrap_or(""));
            }
            if !want_stopped(job, grace, "killed on request before it started") {
                continue;
            }
            self.save(id, Some(("kill", "stop requested")));
        }
        Ok((targets, killed))
    }

    /// Forgets every finished job (optionally of one workspace), logs included.
    fn edit_clean(&mut self, workspace: Option<&str>) -> Vec<String> {
        let removable: Vec<String> = self
            .jobs
            .values()
            .filter(|j| workspace.is_none_or(|ws| j.spec.workspace.as_deref() == Some(ws)))
            .filter(|j| j.obs.state.is_terminal())
            // A finished job about to run again (new spec, or a restart by policy) is not finished.
            .filter(|j| {
                !(j.desired == Desired::Running && (j.obs.generation < j.generation || j.timers.restart_at.is_some()))
            })
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
        for task in self.probes.remove(id).unwrap_or_default() {
            task.abort();
        }
        let result = self.store.delete(id);
        self.note_write(id, result);
        let _ = std::fs::remove_dir_all(self.home.job_dir(id));
    }
}

/// Makes a job desired stopped (a new generation, no restart pending). A job that never got a
/// process has nothing to signal and is Killed at once with `unstarted`. False if it was
/// desired stopped already.
pub(super) fn want_stopped(job: &mut Job, grace: Option<Duration>, unstarted: &str) -> bool {
    if job.desired == Desired::Stopped {
        return false;
    }
    job.desired = Desired::Stopped;
    job.generation += 1;
    job.stop_grace = grace;
    job.cancel_restart();
    if job.obs.state == JobState::Starting && job.obs.run.is_none() {
        super::actions::transition(job, JobState::Killed, unstarted);
    }
    true
}
