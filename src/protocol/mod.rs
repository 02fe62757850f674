//! The daemon's wire protocol: versioned JSON messages in length-prefixed frames.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. A request frame is
//! `{"v":1,"request":{"type":...}}`; a response frame is `{"v":1,"response":{"type":...}}`. Changes
//! to these shapes are caught by the golden tests in `tests/golden/`.

mod frame;
mod types;

pub use frame::{MAX_FRAME, read_frame, read_frame_async, read_frame_async_limited, write_frame, write_frame_async};
pub use types::*;

/// 2: error answers carry their kind, `daemon status` its problems, `run` specs a request id.
/// 3: specs carry `after` conditions, `oneshot`, `daemonizes`/`pidfile`, exec probes and how
/// the job is stopped; tail filters a `since_ms`; attach input and output are bytes (base64).
/// 4: `tail` and `diff` answers may come in several frames (`more`); specs carry log limits;
/// cursors count log index entries, not bytes.
/// 5: `watch` streams the job list as it changes; `status` carries the job's spec, `daemon
/// status` the reconciler's pass count (for the dashboard and its metrics).
pub const VERSION: u32 = 5;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestFrame {
    pub v: u32,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseFrame {
    pub v: u32,
    pub response: Response,
}
