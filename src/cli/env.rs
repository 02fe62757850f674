use super::Output;
use crate::client::Client;
use crate::error::Result;
use crate::render::{Colour, paint};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: String,
    /// Only the variables the job declared (leave out the inherited environment).
    #[arg(long)]
    pub declared: bool,
}

/// A job's environment, each variable with where it came from: the file's `[env]`, the job's
/// `env`, a named environment, an env-file, `--env`, or the caller's environment (`inherited`).
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let mut view = client.env(args.id)?;
    if args.declared {
        view.vars.retain(|v| v.source != "inherited");
    }
    if out.json {
        out.json_line(&view);
        return Ok(0);
    }
    let mut text = String::new();
    for var in &view.vars {
        let source = paint(&format!("# {}", var.source), Colour::Dim, out.colour);
        text.push_str(&format!("{}={}  {source}\n", var.name, var.value));
    }
    out.text(&text);
    Ok(0)
}
