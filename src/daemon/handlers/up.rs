use crate::daemon::Ctx;
use crate::daemon::conn::send;
use crate::protocol::{Change, Response, UpJob, UpRequest, UpView, WaitFor};
use crate::reconcile::{Edit, Progress, Query};
use crate::state::Lifecycle;
use std::time::Instant;
use tokio::net::UnixStream;

/// Where a job of an `up` stands: None while it is still on its way.
fn outcome(job: &Progress, wait: WaitFor) -> Option<bool> {
    let life = &job.life;
    // The old run of a job that is to run again says nothing about the new spec: applied, and
    // on its way otherwise.
    if job.replace_failed.is_some() {
        return Some(false);
    }
    if job.stale {
        return (wait == WaitFor::Applied).then_some(true);
    }
    let failed = life.ending().is_some_and(|e| !e.succeeded()) || life.readiness_gave_up();
    if failed {
        return Some(false);
    }
    let done = match (wait, life) {
        (WaitFor::Applied, _) => true,
        (WaitFor::Launched, Lifecycle::Starting { shim: Some(_) }) => false,
        (WaitFor::Launched, _) => true,
        // Replaced start-first: done once the old version serves no more.
        (WaitFor::Ready, Lifecycle::Ready { .. }) => !job.retiring,
        (WaitFor::Ready, Lifecycle::BackingOff { .. } | Lifecycle::Ended { .. }) => true,
        (WaitFor::Ready, _) => false,
    };
    done.then_some(true)
}

/// Applies the project, then (as asked) waits for its jobs, streaming their progress.
pub async fn handle(ctx: &Ctx, req: UpRequest, stream: &mut UnixStream) -> std::io::Result<()> {
    let started = Instant::now();
    if let Err(e) = crate::spec::validate_project(&req.project, &req.jobs) {
        return send(stream, crate::daemon::conn::error(e)).await;
    }
    let (project, only, revive, jobs, renew) = (req.project.clone(), req.only.clone(), req.revive, req.jobs, req.renew);
    let applied = match ctx.handle.edit(|reply| Edit::Apply { project, jobs, only, revive, renew, reply }).await {
        Ok(a) => a,
        Err(e) => return send(stream, crate::daemon::conn::error(e)).await,
    };
    let mut changes = ctx.handle.changes();
    let mut last: Vec<Option<(String, String)>> = vec![None; applied.len()];
    loop {
        let ids = applied.iter().map(|(_, id)| id.clone()).collect();
        let Ok(jobs) = ctx.handle.query(|reply| Query::Progress { ids, reply }).await else {
            return Ok(());
        };
        let snap = snapshot(&applied, &jobs, req.wait, started.elapsed().as_millis() as u64);
        let settled = snap.iter().all(|(_, outcome)| outcome.is_some());
        let jobs: Vec<UpJob> = snap.into_iter().map(|(j, _)| j).collect();
        if req.progress {
            for (i, job) in jobs.iter().enumerate() {
                let now = Some((job.state.clone(), job.reason.clone()));
                if last[i] != now && job.action != "unchanged" {
                    send(stream, Response::Progress(job.clone())).await?;
                    last[i] = now;
                }
            }
        }
        if settled {
            let ok = jobs.iter().all(|j| j.ok);
            let view = UpView { project: req.project, ok, elapsed_ms: started.elapsed().as_millis() as u64, jobs };
            return send(stream, Response::Up(view)).await;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() {
                return Ok(());
            },
            _ = super::client_gone(stream) => return Ok(()),
        }
    }
}

/// Each job of the `up` as it stands, with its outcome (None while still on its way).
fn snapshot(
    applied: &[(Change, String)],
    jobs: &[Option<Progress>],
    wait: WaitFor,
    elapsed_ms: u64,
) -> Vec<(UpJob, Option<bool>)> {
    applied
        .iter()
        .zip(jobs)
        .map(|((change, id), job)| {
            let job = job.as_ref();
            // A removed job is done once it has stopped and been forgotten.
            let result = match (change.action.as_str(), job) {
                ("remove", None) => Some(true),
                ("remove", Some(_)) if wait != WaitFor::Applied => None,
                ("remove", Some(_)) => Some(true),
                (_, job) => job.and_then(|j| outcome(j, wait)),
            };
            let view = UpJob {
                job: change.job.clone(),
                id: id.clone(),
                action: change.action.clone(),
                fields: change.fields.clone(),
                state: job.map_or("removed".into(), |j| j.life.state().as_str().into()),
                reason: job.map_or("removed from the file".into(), |j| {
                    j.replace_failed.clone().unwrap_or_else(|| j.life.reason())
                }),
                pid: job.and_then(|j| j.life.pid()),
                ok: result == Some(true),
                elapsed_ms,
            };
            (view, result)
        })
        .collect()
}
