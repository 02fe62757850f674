use super::Output;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// The skill, written for AI coding agents and checked by a test to cover every command.
pub const SKILL: &str = include_str!("../skill/SKILL.md");

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: SkillCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SkillCommand {
    /// Write SKILL.md, which teaches an AI coding agent to use bgrun, into DIR.
    Install { dir: PathBuf },
}

pub fn exec(args: Args, out: &Output) -> Result<i32> {
    let SkillCommand::Install { dir } = args.command;
    std::fs::create_dir_all(&dir).map_err(|e| Error::context(format!("cannot create {}", dir.display()), e))?;
    let path = dir.join("SKILL.md");
    std::fs::write(&path, SKILL).map_err(|e| Error::context(format!("cannot write {}", path.display()), e))?;
    let shown = path.canonicalize().unwrap_or(path);
    if out.json {
        out.json_line(&serde_json::json!({ "installed": shown }));
    } else {
        out.text(&format!("Installed skill to {}", shown.display()));
    }
    Ok(0)
}
