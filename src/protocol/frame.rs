//! Length-prefixed framing, blocking (client) and async (daemon).

use std::io::{self, Read, Write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Larger frames are refused: nothing legitimate is this big, and a garbage length must not make
/// the daemon allocate gigabytes.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

fn check_len(len: usize) -> io::Result<usize> {
    if len > MAX_FRAME {
        Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is too large")))
    } else {
        Ok(len)
    }
}

pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    check_len(payload.len())?;
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = check_len(u32::from_be_bytes(len) as usize)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Frames up to this long go out in one write, their length copied in front of them.
const COPY_UP_TO: usize = 16 << 10;

pub async fn write_frame_async(w: &mut (impl AsyncWriteExt + Unpin), payload: &[u8]) -> io::Result<()> {
    check_len(payload.len())?;
    let len = (payload.len() as u32).to_be_bytes();
    if payload.len() > COPY_UP_TO {
        // A long answer (1000 jobs' list: ~300 KB) is not copied only to put 4 bytes before it.
        w.write_all(&len).await?;
        w.write_all(payload).await?;
    } else {
        let mut buf = Vec::with_capacity(4 + payload.len());
        buf.extend_from_slice(&len);
        buf.extend_from_slice(payload);
        w.write_all(&buf).await?;
    }
    w.flush().await
}

pub async fn read_frame_async(r: &mut (impl AsyncReadExt + Unpin)) -> io::Result<Option<Vec<u8>>> {
    read_frame_async_limited(r, MAX_FRAME, None).await
}

/// Reads one frame of at most `max` bytes; `Ok(None)` at a clean end of stream. Memory grows with
/// the bytes that actually arrive, not with the length a peer announces, and once the length has
/// arrived the rest must follow within `body_timeout`, so a slow or stalled sender cannot hold
/// memory or a connection for long.
pub async fn read_frame_async_limited(
    r: &mut (impl AsyncReadExt + Unpin),
    max: usize,
    body_timeout: Option<std::time::Duration>,
) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = check_len(u32::from_be_bytes(len) as usize)?;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is over {max}")));
    }
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    let mut limited = (&mut *r).take(len as u64);
    let body = limited.read_to_end(&mut buf);
    match body_timeout {
        Some(t) => tokio::time::timeout(t, body)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the rest of the frame did not arrive in time"))??,
        None => body.await?,
    };
    if buf.len() != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the frame ended early"));
    }
    Ok(Some(buf))
}
