use super::log_of;
use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::logs::{Line, reader};
use crate::protocol::{ExpectView, Response};
use std::time::Duration;

/// Waits for a line matching `pattern` in everything the job wrote and will write. Gives up at the
/// timeout, or when the job has ended for good without a match.
pub async fn handle(ctx: &Ctx, key: String, pattern: String, regex: bool, timeout: Duration) -> Result<Response> {
    let matcher: Box<dyn Fn(&str) -> bool + Send + Sync> = if regex {
        let re =
            regex::Regex::new(&pattern).map_err(|e| Error::new(format!("{pattern:?} is not a valid regex: {e}")))?;
        Box::new(move |s| re.is_match(s))
    } else {
        Box::new(move |s| s.contains(pattern.as_str()))
    };
    let (id, dir) = log_of(ctx, key).await?;
    let mut sub = ctx.logs.subscribe(&dir).map_err(|e| Error::context("cannot watch the log", e))?;
    let mut changes = ctx.handle.changes();
    let search = async {
        let mut offset = 0;
        let mut joiner = reader::Joiner::default();
        loop {
            let (lines, next) =
                reader::read_from(&dir, offset).map_err(|e| Error::context("cannot read the log", e))?;
            offset = next;
            for line in lines {
                // A prompt without a newline may match while it is still unfinished.
                let whole = joiner.join(line);
                if matcher(&whole.text()) {
                    return Ok::<_, Error>(Some(whole));
                }
            }
            let over = ctx.handle.progress(&id).await?.is_none_or(|j| j.finished);
            if over {
                // The last read after the end saw everything the job wrote.
                let (lines, _) =
                    reader::read_from(&dir, offset).map_err(|e| Error::context("cannot read the log", e))?;
                return Ok(lines.into_iter().find(|l| matcher(&l.text())));
            }
            tokio::select! {
                _ = sub.changed() => {}
                _ = changes.changed() => {}
            }
        }
    };
    let found: Option<Line> = match tokio::time::timeout(timeout, search).await {
        Ok(result) => result?,
        Err(_) => None,
    };
    Ok(Response::Expect(match found {
        Some(l) => ExpectView { matched: true, line_number: Some(l.number), content: Some(l.text()) },
        None => ExpectView { matched: false, line_number: None, content: None },
    }))
}
