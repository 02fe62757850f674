//! One handler per request kind. Handlers read state or send edits to the reconciler; none of
//! them touches a process.

mod attach;
mod clean;
mod daemon_status;
mod delete;
mod deploys;
mod diff;
mod down;
mod env;
mod expect;
mod kill;
mod list;
mod plan;
mod restart;
mod run;
mod screen;
mod send;
mod stats;
mod status;
mod tail;
mod up;
mod wait;
mod watch;

use super::Ctx;
use super::conn::{error, send};
use crate::protocol::{Request, Response};
use std::time::Duration;
use tokio::net::UnixStream;

pub async fn dispatch(ctx: &Ctx, request: Request, stream: &mut UnixStream) -> std::io::Result<()> {
    let result = match request {
        Request::Run { spec } => run::handle(ctx, *spec).await,
        Request::List { workspace } => return list::handle(ctx, workspace, stream).await,
        Request::Watch { workspace } => return watch::handle(ctx, workspace, stream).await,
        Request::Status { job } => status::handle(ctx, job).await,
        Request::Tail(req) if req.follow => return tail::follow(ctx, req, stream).await,
        Request::Tail(req) if req.digest => tail::digest(ctx, req).await,
        Request::Tail(req) => return tail::handle(ctx, req, stream).await,
        Request::Up(req) => return up::handle(ctx, req, stream).await,
        Request::Plan { project, jobs, only } => plan::handle(ctx, project, jobs, only).await,
        Request::Down { project, only } => down::handle(ctx, project, only).await,
        Request::Restart { job, force } => restart::handle(ctx, job, force).await,
        Request::Send { job, data } => send::handle(ctx, job, data).await,
        Request::Stats { job } => stats::handle(ctx, job).await,
        Request::StatsAll => stats::all(ctx).await,
        Request::Env { job } => env::handle(ctx, job).await,
        Request::Delete { job } => delete::handle(ctx, job).await,
        Request::RecordDeploy(deploy) => deploys::record(ctx, deploy).await,
        Request::Deploys { project, limit } => deploys::history(ctx, project, limit).await,
        Request::Screen { job, lines } => screen::handle(ctx, job, lines).await,
        Request::Attach { job, cols, rows } => return attach::handle(ctx, job, cols, rows, stream).await,
        Request::AttachInput { .. } | Request::AttachResize { .. } => {
            Err(crate::error::Error::new("not attached: send `attach` first"))
        }
        Request::Diff(req) => return diff::handle(ctx, req, stream).await,
        Request::Kill { target, grace_ms } => kill::handle(ctx, target, grace_ms).await,
        Request::Clean { workspace } => clean::handle(ctx, workspace).await,
        Request::Wait { job, timeout_ms } => {
            match unless_client_leaves(stream, wait::handle(ctx, job, Duration::from_millis(timeout_ms))).await {
                Some(result) => result,
                None => return Ok(()),
            }
        }
        Request::Expect { job, pattern, regex, timeout_ms } => {
            let search = expect::handle(ctx, job, pattern, regex, Duration::from_millis(timeout_ms));
            match unless_client_leaves(stream, search).await {
                Some(result) => result,
                None => return Ok(()),
            }
        }
        Request::DaemonStatus => daemon_status::handle(ctx).await,
        // Answered here; the connection loop then shuts the daemon down.
        Request::DaemonStop => Ok(Response::Ok),
    };
    send(stream, result.unwrap_or_else(error)).await
}

pub use list::warm_ports;

/// Runs a request that may wait long until it answers, or until the client goes away: then the
/// wait is dropped with it (its log watch and readiness subscription too), and None is returned.
async fn unless_client_leaves<T>(stream: &UnixStream, work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        _ = client_gone(stream) => None,
    }
}

/// Resolves once the client has closed its end. A client sends nothing while it waits for an
/// answer, so anything readable is its end of file (or a protocol error, which ends it all the same).
pub async fn client_gone(stream: &UnixStream) {
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            _ => return,
        }
    }
}

/// A job's id and the directory its log is in, found by id, name or prefix.
async fn log_of(ctx: &Ctx, key: String) -> crate::error::Result<(String, std::path::PathBuf)> {
    let id = ctx.handle.job(key).await?.id;
    let dir = ctx.home.job_dir(&id);
    Ok((id, dir))
}
