use super::Output;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::{Request, Response};
use crate::spec::parse_duration;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: String,
    /// Text to find in a line (or a regex with --regex).
    pub pattern: String,
    /// Treat the pattern as a regular expression.
    #[arg(long)]
    pub regex: bool,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// Exit code 0 on a match; 1 at the timeout (or when the job ended without one).
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let req = Request::Expect {
        job: args.id,
        pattern: args.pattern,
        regex: args.regex,
        timeout_ms: args.timeout.as_millis() as u64,
    };
    let Response::Expect(e) = client.call(req)? else {
        return Err(Error::new("unexpected answer from the daemon"));
    };
    if out.json {
        out.json_line(&e);
    } else if let (Some(n), Some(content)) = (e.line_number, &e.content) {
        out.text(&format!("{n}: {content}"));
    } else {
        out.text("no match");
    }
    Ok(if e.matched { 0 } else { 1 })
}
