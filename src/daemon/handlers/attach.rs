use crate::daemon::Ctx;
use crate::daemon::conn::{error, send};
use crate::error::Error;
use crate::logs::reader;
use crate::protocol::{self, Request, RequestFrame, Response};
use crate::reconcile::Edit;
use crate::supervisor::files;
use std::io::Write;
use tokio::net::UnixStream;

/// Connects the client's terminal to a PTY job: its screen first, then its output as it comes;
/// the client's keystrokes go to the job's terminal and its size follows the client's. Ends when
/// the job does or the client detaches (closes the connection). The job is never touched.
pub async fn handle(ctx: &Ctx, key: String, cols: u16, rows: u16, stream: &mut UnixStream) -> std::io::Result<()> {
    let found = ctx.handle.job(key).await.and_then(|job| match (job.spec.pty.is_some(), job.life().pid()) {
        (false, _) => Err(Error::new("the job has no terminal").with_hint("attach works with jobs started with --pty")),
        (true, Some(_)) => Ok((job.id.clone(), job.obs.log_cursor)),
        (true, None) => Err(Error::new("the job is not running")),
    });
    let (id, run_start) = match found {
        Ok(f) => f,
        Err(e) => return send(stream, error(e)).await,
    };
    let dir = ctx.home.job_dir(&id);
    // Like every change to a job's processes, a resize goes through the reconciler.
    let resize = |cols: u16, rows: u16| {
        let id = id.clone();
        async move {
            let _ = ctx.handle.edit(|reply| Edit::Resize { id, cols, rows, reply }).await;
        }
    };
    resize(cols, rows).await;
    let mut sub = match ctx.logs.subscribe(&dir) {
        Ok(s) => s,
        Err(e) => return send(stream, error(Error::context("cannot watch the job", e))).await,
    };
    let mut changes = ctx.handle.changes();
    // The screen as it is now, drawn on the client's terminal; then the output written since.
    let (first, mut offset) = match files::read_screen(&dir) {
        Some(screen) => (screen.formatted, screen.log_cursor),
        None => {
            let cursor = reader::end(&dir);
            (crate::logs::terminal::replay(&dir, run_start, cols, rows)?.screen().contents_formatted(), cursor)
        }
    };
    send(stream, Response::Output { data: first.into() }).await?;

    let (mut rd, mut wr) = stream.split();
    loop {
        // Liveness first: once the job has ended its shim has finished the log, so the read below
        // is complete and the last one.
        let alive = ctx.handle.progress(&id).await.ok().flatten().is_some_and(|j| j.life.has_process());
        let (bytes, next) = reader::bytes_since(&dir, offset)?;
        offset = next;
        if !bytes.is_empty() {
            send(&mut wr, Response::Output { data: bytes }).await?;
        }
        if !alive {
            return send(&mut wr, Response::End { state: "ended".into() }).await;
        }
        tokio::select! {
            // Keystrokes and resizes are small; a bigger frame is not a terminal's.
            frame = protocol::read_frame_async_limited(&mut rd, 1024 * 1024, Some(super::super::conn::SLOW_FRAME)) => {
                let Ok(Some(bytes)) = frame else { return Ok(()) };  // detached
                match serde_json::from_slice::<RequestFrame>(&bytes).map(|f| f.request) {
                    Ok(Request::AttachInput { data }) => {
                        let written = files::open_stdin(&dir).and_then(|mut f| f.write_all(&data));
                        if written.is_err() {
                            return send(&mut wr, Response::End { state: "stdin closed".into() }).await;
                        }
                    }
                    Ok(Request::AttachResize { cols, rows }) => resize(cols, rows).await,
                    _ => return send(&mut wr, error(Error::new("only input and resizes while attached"))).await,
                }
            }
            _ = sub.changed() => {}
            _ = changes.changed() => {}
        }
    }
}
