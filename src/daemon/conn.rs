//! One client connection: frames in, dispatch to the request's handler, frames out. Anything
//! malformed is answered with an error and the connection closed; nothing here may panic.

use super::Ctx;
use super::handlers;
use crate::error::Error;
use crate::protocol::{self, Request, RequestFrame, Response, ResponseFrame, VERSION};
use std::sync::Arc;
use tokio::net::UnixStream;

/// The largest request: an `up` of a thousand jobs, each with a large environment, fits many
/// times over; anything bigger is refused before it is read.
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;
/// How long a connection may wait before sending its next request.
const IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long the rest of a frame may take once its length has arrived.
pub const SLOW_FRAME: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(ctx: Arc<Ctx>, mut stream: UnixStream) {
    // The socket is 0600 already; checking the peer also covers a socket reached some other way.
    let own_uid = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == own_uid => {}
        _ => {
            let _ = send(&mut stream, error(Error::new("permission denied: the daemon belongs to another user"))).await;
            return;
        }
    }
    loop {
        let read = protocol::read_frame_async_limited(&mut stream, MAX_REQUEST, Some(SLOW_FRAME));
        let bytes = match tokio::time::timeout(IDLE, read).await {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return,
            // A connection that says nothing is closed: it holds a descriptor and a task.
            Err(_) => return,
            Ok(Err(e)) => {
                let _ = send(&mut stream, error(Error::bad_input(format!("bad frame: {e}")))).await;
                return;
            }
        };
        let frame: RequestFrame = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => {
                let _ = send(&mut stream, error(Error::bad_input(format!("bad request: {e}")))).await;
                return;
            }
        };
        if frame.v != VERSION {
            let msg = Error::new(format!("this daemon speaks protocol {VERSION}, the client {}", frame.v))
                .with_hint("restart the daemon with `bgrun daemon stop`; jobs keep running");
            let _ = send(&mut stream, error(msg)).await;
            return;
        }
        let stop_after = matches!(frame.request, Request::DaemonStop);
        if handlers::dispatch(&ctx, frame.request, &mut stream).await.is_err() {
            return;
        }
        if stop_after {
            ctx.shutdown.notify_one();
            return;
        }
    }
}

pub fn error(e: Error) -> Response {
    Response::Error { message: e.message, hint: e.hint, kind: e.kind }
}

pub async fn send(stream: &mut (impl tokio::io::AsyncWriteExt + Unpin), response: Response) -> std::io::Result<()> {
    let frame = ResponseFrame { v: VERSION, response };
    let bytes = serde_json::to_vec(&frame).map_err(std::io::Error::other)?;
    protocol::write_frame_async(stream, &bytes).await
}
