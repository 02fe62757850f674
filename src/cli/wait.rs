use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;
use crate::spec::parse_duration;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// Exit code 0 once the job is ready; 1 if it ended first or the timeout passed.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let w = client.wait(args.job.key()?, args.timeout.as_millis() as u64)?;
    if out.json {
        out.json_line(&w);
    } else if w.ready {
        out.text(&format!("ready after {} ms", w.elapsed_ms));
    } else if let Some(state) = &w.state {
        let code = w.exit_code.map_or(String::new(), |c| format!(" with code {c}"));
        out.text(&format!("not ready: the job {state}{code}"));
    } else {
        out.text(&format!("not ready after {} ms", w.elapsed_ms));
    }
    Ok(if w.ready { 0 } else { 1 })
}
