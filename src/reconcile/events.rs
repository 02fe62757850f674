//! Events from the supervisor: a run was spawned (or could not be), a run ended.

use super::Reconciler;
use super::actions::transition;
use crate::job::Desired;
use crate::state::JobState;
use crate::supervisor::files::{self, ChildFile};
use crate::supervisor::launch;

pub enum Event {
    Spawned { id: String, attempt: u64, result: Result<ChildFile, String> },
    Exited { id: String, attempt: u64 },
}

impl Reconciler {
    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Spawned { id, attempt, result } => self.on_spawned(&id, attempt, result),
            Event::Exited { id, attempt } => self.on_exited(&id, attempt),
        }
    }

    fn on_spawned(&mut self, id: &str, attempt: u64, result: Result<ChildFile, String>) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.attempt != attempt || job.obs.state != JobState::Starting {
            return;
        }
        match result {
            Ok(child) => {
                let now = files::unix_ms();
                if let Some(run) = &mut job.obs.run {
                    run.pid = child.pid;
                    run.start_time = child.start_time;
                }
                job.obs.started_ms = Some(now);
                job.obs.ever_spawned = true;
                transition(job, JobState::Running, "running");
                if job.spec.ready.is_empty() {
                    job.obs.ready_ms = Some(now);
                    transition(job, JobState::Ready, "running (no readiness checks)");
                }
                let detail = format!("pid {}", child.pid);
                self.save(id, Some(("spawned", &detail)));
            }
            Err(reason) => {
                job.obs.ended_ms = Some(files::unix_ms());
                transition(job, JobState::Crashed, &reason);
                self.save(id, Some(("spawn-failed", &reason)));
            }
        }
    }

    pub(super) fn on_exited(&mut self, id: &str, attempt: u64) {
        let dir = self.home.job_dir(id);
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.attempt != attempt || job.obs.state.is_terminal() {
            return;
        }
        job.stopping = None;
        let stop_requested = job.desired == Desired::Stopped;
        let (state, reason, kind) = match files::read_exit(&dir) {
            Some(exit) => {
                job.obs.exit_code = exit.code;
                job.obs.exit_signal = exit.signal;
                job.obs.ended_ms = Some(exit.unix_ms);
                let how = describe_exit(exit.code, exit.signal);
                if exit.stopped || stop_requested {
                    (JobState::Killed, format!("killed on request ({how})"), "killed")
                } else if exit.code == Some(0) {
                    (JobState::Exited, how, "exited")
                } else {
                    (JobState::Crashed, how, "crashed")
                }
            }
            None => {
                // The shim died without a word (SIGKILLed, say). Its job can no longer be
                // supervised or logged, so it is not left running unseen.
                if let Some(child) = files::read_child(&dir) {
                    launch::kill_orphaned_job(&child);
                }
                job.obs.ended_ms = Some(files::unix_ms());
                (JobState::Crashed, "its supervisor process died unexpectedly".to_string(), "crashed")
            }
        };
        transition(job, state, &reason);
        self.save(id, Some((kind, &reason)));
    }
}

fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map_or_else(|_| format!("signal {s}"), |sig| sig.as_str().to_string());
            format!("killed by {name}")
        }
        (None, None) => "exited".to_string(),
    }
}
