//! `bgrun import FILE`: a PM2 ecosystem file, a Procfile or a process-compose.yaml written as a
//! bgrun.toml. What cannot be carried over is listed on stderr, one line per key (JSON lines when
//! stderr is not a terminal). Nothing is written on bad input, under `--strict` with keys left
//! out, or over an existing file without `--force`.

use super::Output;
use super::project::{inherited_env, left_out, print_problems};
use crate::error::{Error, Result};
use crate::project::import::{self, Format, Request, pm2_keys};
use crate::project::load;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a JavaScript ecosystem file may take to evaluate, unless BGRUN_IMPORT_TIMEOUT says.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file", "mapping"])))]
pub struct Args {
    /// ecosystem.config.js (.cjs, .mjs, .json, .yaml), a Procfile, or process-compose.yaml.
    pub file: Option<PathBuf>,
    /// Where to write the result.
    #[arg(long, short = 'o', default_value = crate::project::FILE_NAME)]
    pub output: PathBuf,
    /// Print the result instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 1 and write nothing when any key of the source cannot be carried over.
    #[arg(long)]
    pub strict: bool,
    /// Overwrite the output file.
    #[arg(long)]
    pub force: bool,
    /// The source's format, when its name does not tell.
    #[arg(long, value_enum)]
    pub from: Option<Format>,
    /// Print how the keys of a PM2 app map to bgrun.toml (a markdown table), and nothing else.
    #[arg(long, value_parser = ["pm2"], conflicts_with_all = ["dry_run", "strict", "force", "from"])]
    pub mapping: Option<String>,
}

pub fn exec(args: Args, out: &Output) -> Result<i32> {
    let Some(file) = args.file else {
        out.text(&pm2_keys::markdown());
        return Ok(0);
    };
    let here = std::env::current_dir().map_err(|e| Error::context("current directory", e))?;
    let output = here.join(&args.output);
    if !args.dry_run && !args.force && output.exists() {
        return Err(exists(&output));
    }
    let request = Request {
        source: here.join(&file),
        format: args.from,
        out_dir: output.parent().map_or(here.clone(), Path::to_path_buf),
        node_timeout: node_timeout()?,
    };
    let imported = import::import(&request)?;
    let entry = imported.format.entry();
    let tags = ("not imported", "not_imported");
    if let Some(code) =
        left_out(&imported.unsupported, tags, |u| u.line(entry), args.strict, "key(s) could not be imported")
    {
        return Ok(code);
    }
    if args.dry_run {
        crate::out!("{}", imported.toml);
        return Ok(0);
    }
    write(&output, &imported.toml, args.force)?;
    // The file is bgrun's to load: say at once if it does not (a cwd missing on this machine).
    let options = load::Options { inherited: inherited_env(), environment: None };
    if let Err(problems) = load::parse(&output, imported.toml.clone(), &options) {
        crate::warn!("warning: {} was written but does not load as it is:", output.display());
        print_problems(&problems, out);
    }
    let source = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if out.json {
        out.json_line(&serde_json::json!({
            "written": output,
            "from": source,
            "jobs": imported.jobs,
            "not_imported": imported.unsupported.len(),
        }));
    } else {
        let left_out = match imported.unsupported.len() {
            0 => String::new(),
            n => format!("; {n} key(s) not imported (listed above)"),
        };
        out.text(&format!(
            "wrote {}: {} job(s) from {source} ({}){left_out}\nnext: `bgrun plan` shows what `bgrun up` would start",
            args.output.display(),
            imported.jobs.len(),
            imported.jobs.join(", "),
        ));
    }
    Ok(0)
}

fn exists(output: &Path) -> Error {
    Error::conflict(format!("{} exists; nothing was written", output.display()))
        .with_hint("pass --force to overwrite it, or -o FILE to write elsewhere")
}

fn node_timeout() -> Result<Duration> {
    match std::env::var("BGRUN_IMPORT_TIMEOUT") {
        Ok(text) => {
            crate::spec::parse_duration(&text).map_err(|e| Error::bad_input(format!("BGRUN_IMPORT_TIMEOUT: {e}")))
        }
        Err(_) => Ok(NODE_TIMEOUT),
    }
}

/// Writes the file whole or not at all: a temporary file beside it, then moved in place. Without
/// `force` the move is a link, which fails if a file appeared there meanwhile.
fn write(output: &Path, text: &str, force: bool) -> Result<()> {
    let dir = output.parent().unwrap_or(Path::new("."));
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.import-{}", std::process::id()));
    std::fs::write(&temp, text).map_err(|e| Error::context(format!("cannot write {}", temp.display()), e))?;
    let moved = if force { std::fs::rename(&temp, output) } else { std::fs::hard_link(&temp, output) };
    let _ = std::fs::remove_file(&temp);
    match moved {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists(output)),
        Err(e) => Err(Error::context(format!("cannot write {}", output.display()), e)),
    }
}
