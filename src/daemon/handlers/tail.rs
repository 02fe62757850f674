use super::log_of;
use crate::daemon::Ctx;
use crate::daemon::conn::send;
use crate::error::{Error, Result};
use crate::logs::filter::{Compiled, line_level};
use crate::logs::reader;
use crate::protocol::{DigestView, Response, TailRequest};
use tokio::net::UnixStream;

fn read_err(e: std::io::Error) -> Error {
    Error::context("cannot read the job's log", e)
}

pub async fn handle(ctx: &Ctx, req: TailRequest) -> Result<Response> {
    let filter = Compiled::new(&req.filter)?;
    let (_, path) = log_of(ctx, req.job).await?;
    if req.digest {
        return digest(&path, &filter);
    }
    let lines = reader::read_last(&path, req.lines, &|l| filter.keeps(l)).map_err(read_err)?;
    Ok(Response::Lines { lines: lines.iter().map(|l| filter.view(l)).collect() })
}

/// Counts of errors and warnings over the whole log, with the last of each.
fn digest(path: &std::path::Path, filter: &Compiled) -> Result<Response> {
    let (lines, _) = reader::read_from(path, 0).map_err(read_err)?;
    let mut d = DigestView { lines: 0, errors: 0, warnings: 0, last_error: None, last_warning: None };
    for line in lines.iter().filter(|l| filter.keeps(l)) {
        d.lines += 1;
        let text = crate::logs::filter::strip_ansi(&line.text());
        match line_level(&text) {
            Some(2) => {
                d.errors += 1;
                d.last_error = Some(text);
            }
            Some(_) => {
                d.warnings += 1;
                d.last_warning = Some(text);
            }
            None => {}
        }
    }
    Ok(Response::Digest(d))
}

/// `tail --follow`: the last lines, then new lines as they are written (woken by inotify on the
/// job's directory), across restarts, until the job is finished (ended with no restart coming,
/// or killed) or the client goes away.
pub async fn follow(ctx: &Ctx, req: TailRequest, stream: &mut UnixStream) -> std::io::Result<()> {
    let prepared = async {
        let filter = Compiled::new(&req.filter)?;
        let (id, path) = log_of(ctx, req.job.clone()).await?;
        Ok::<_, Error>((filter, id, path))
    };
    let (filter, id, path) = match prepared.await {
        Ok(p) => p,
        Err(e) => return send(stream, crate::daemon::conn::error(e)).await,
    };
    let mut wake = match ctx.logs.subscribe(path.parent().unwrap_or(&path)) {
        Ok(s) => s,
        Err(e) => return send(stream, crate::daemon::conn::error(Error::context("cannot watch the log", e))).await,
    };
    let mut changes = ctx.handle.changes();

    // Everything up to here is covered by the tail below; what follows is read from here on.
    let mut offset = std::fs::metadata(&path).map_or(0, |m| m.len());
    let last = reader::read_last(&path, req.lines, &|l| filter.keeps(l)).map_err(std::io::Error::other)?;
    send(stream, Response::Lines { lines: last.iter().map(|l| filter.view(l)).collect() }).await?;
    // Lines the tail already showed (written between the size check and the read) are skipped.
    let mut shown = last.last().map_or(0, |l| l.number);
    loop {
        // The state first: once the job has ended its shim has finished the log, so the read
        // below is complete and the last one.
        let job = ctx.handle.progress(&id).await;
        let (lines, next) = reader::read_from(&path, offset).map_err(std::io::Error::other)?;
        offset = next;
        let views: Vec<_> =
            lines.iter().filter(|l| l.number > shown && filter.keeps(l)).map(|l| filter.view(l)).collect();
        shown = 0;
        if !views.is_empty() {
            send(stream, Response::Lines { lines: views }).await?;
        }
        match job {
            // Across restarts: the follow ends once nothing will run the job again by itself.
            Ok(Some(j)) if !j.finished => {}
            Ok(Some(j)) => return send(stream, Response::End { state: j.life.state().as_str().into() }).await,
            _ => return send(stream, Response::End { state: "removed".into() }).await,
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = changes.changed() => {}
            _ = super::client_gone(stream) => return Ok(()),
        }
    }
}
