use super::Output;
use crate::client::Client;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: String,
    /// How many lines.
    #[arg(long, default_value_t = 20)]
    pub lines: usize,
}

/// The job's current screen: the rendered terminal of a PTY job, the last lines of another.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let lines = client.screen(args.id, args.lines)?;
    if out.json {
        out.json_line(&lines);
    } else {
        out.text(&lines.join("\n"));
    }
    Ok(0)
}
