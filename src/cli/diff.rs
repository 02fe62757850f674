use super::tail::{FilterArgs, LinesPrinter};
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
    let head = |cursor: u64| format!("\"cursor\":{cursor},");
    let mut printer = LinesPrinter::new(out);
    let cursor = client.diff_each(req, |cursor, lines| printer.add(&head(cursor), &lines))?;
    printer.finish(&head(cursor));
    Ok(0)
}
