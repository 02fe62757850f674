use super::tail::{FilterArgs, print_lines};
use super::{JobArg, Output};
use crate::client::Client;
use crate::error::Result;
use crate::protocol::DiffRequest;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobArg,
    /// At most this many (of the newest) lines.
    #[arg(long)]
    pub lines: Option<usize>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let req = DiffRequest { job: args.job.key()?, lines: args.lines, filter: args.filter.to_filter(None) };
    let (cursor, lines) = client.diff(req)?;
    if out.json {
        out.json_line(&serde_json::json!({ "cursor": cursor, "lines": lines }));
    } else {
        print_lines(&lines, out, false);
    }
    Ok(0)
}
