use super::Output;
use crate::client::Client;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: String,
    /// What to write to the job's stdin.
    pub data: Option<String>,
    /// Press Enter after the data (or alone, without data).
    #[arg(long)]
    pub enter: bool,
    /// Append a newline (same as --enter; kept for old scripts).
    #[arg(long, hide = true)]
    pub newline: bool,
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let mut data = args.data.unwrap_or_default();
    if args.enter || args.newline {
        data.push('\n');
    }
    if data.is_empty() {
        return Err(Error::new("nothing to send").with_hint("give DATA, or --enter to press Enter"));
    }
    client.send_input(args.id, data)?;
    if out.json {
        out.json_line(&serde_json::json!({ "ok": true }));
    }
    Ok(0)
}
