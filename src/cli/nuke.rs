use super::Output;
use crate::client::Client;
use crate::error::{Error, Result};
use std::io::IsTerminal;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not ask for confirmation (required when nobody is at a terminal to answer).
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// Stops every job and forgets them all, logs included.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    if !args.force {
        if out.json || !std::io::stdin().is_terminal() {
            return Err(Error::bad_input("nuke stops and forgets every job and its logs: pass --force to mean it"));
        }
        if !super::clean::confirm("Stop every job and forget them all, with their logs?") {
            out.text("nothing removed");
            return Ok(1);
        }
    }
    let removed = client.delete(None)?;
    super::clean::print_removed(&removed, out);
    Ok(0)
}
