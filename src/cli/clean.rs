use super::Output;
use crate::client::Client;
use crate::error::Result;
use std::io::{BufRead, IsTerminal, Write};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only jobs of this workspace.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'f')]
    pub force: bool,
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    // Ask only a person at a terminal; a script has nobody to answer.
    if !args.force && !out.json && std::io::stdin().is_terminal() {
        let scope = args.workspace.as_deref().map_or(String::new(), |w| format!(" in workspace {w}"));
        if !confirm(&format!("Remove every finished job{scope} and its logs?")) {
            out.text("nothing removed");
            return Ok(1);
        }
    }
    let removed = client.clean(args.workspace)?;
    print_removed(&removed, out);
    Ok(0)
}

/// Asks the person at the terminal; only an explicit yes is one.
pub fn confirm(question: &str) -> bool {
    crate::out!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

pub fn print_removed(removed: &[String], out: &Output) {
    if out.json {
        out.json_line(&serde_json::json!({ "removed": removed }));
    } else {
        out.text(&format!("removed {} job{}", removed.len(), if removed.len() == 1 { "" } else { "s" }));
    }
}
