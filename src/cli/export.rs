//! `bgrun export FORMAT`: the project's jobs as systemd units, a compose file or Kubernetes
//! manifests, printed or written into a directory. What a format cannot carry is listed on
//! stderr, one line per job and key (JSON lines when stderr is not a terminal). A file with
//! problems, or `--strict` with anything left out, writes nothing.

use super::Output;
use super::project::{FileArg, left_out, print_problems};
use crate::error::{Error, ErrorKind, Result};
use crate::project::export::{self, Exported, Format, Input};
use crate::project::import::convert::path_between;
use crate::project::load;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// systemd, compose or kubernetes.
    #[arg(value_enum)]
    pub format: Format,
    #[command(flatten)]
    pub file: FileArg,
    /// Write the files into this directory (made if missing; files of the same names are
    /// replaced) instead of printing them. systemd's several units are printed one after
    /// another, each after a `# file: NAME` line.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Exit 1 and write nothing when anything of a job cannot be exported.
    #[arg(long)]
    pub strict: bool,
    /// The systemd version the units are for: from 254, restarts back off as bgrun's do
    /// (RestartSteps=, RestartMaxDelaySec=).
    #[arg(long, value_name = "N", default_value_t = export::DEFAULT_SYSTEMD_VERSION)]
    pub systemd_version: u32,
}

pub fn exec(args: Args, out: &Output) -> Result<i32> {
    let here = current_dir()?;
    let path = args.file.path()?;
    let path = path.canonicalize().map_err(|e| Error::bad_input(format!("cannot read {}: {e}", path.display())))?;
    // The jobs' environment is what the file declares: the caller's is no part of a deployment.
    let options = load::Options { inherited: Default::default(), environment: args.file.environment.clone() };
    let project = match load::load(&path, &options) {
        Ok(project) => project,
        Err(problems) => {
            // Export's stdout is often a file (`> compose.yaml`): stderr decides how it reads, as for
            // what is left out.
            let on_stderr = Output { json: !std::io::stderr().is_terminal(), colour: out.colour };
            print_problems(&problems, &on_stderr);
            return Ok(ErrorKind::BadInput.exit_code());
        }
    };
    let out_dir = match &args.output {
        Some(dir) => absolute(&here.join(dir)),
        None => here.clone(),
    };
    let input = Input {
        project: &project,
        source: path_between(&here, &path).display().to_string(),
        out_dir,
        systemd_version: args.systemd_version,
        environment: args.file.environment.clone(),
    };
    let exported = export::export(args.format, &input);
    let line = |u: &export::Untranslated| format!("job `{}`: {}: {}", u.job, u.key, u.reason);
    let tags = ("not exported", "not_exported");
    if let Some(code) = left_out(&exported.untranslated, tags, line, args.strict, "thing(s) could not be exported") {
        return Ok(code);
    }
    let Some(dir) = &args.output else {
        let several = exported.files.len() > 1;
        for (i, file) in exported.files.iter().enumerate() {
            let gap = if i > 0 { "\n" } else { "" };
            let label = if several { format!("{gap}# file: {}\n", file.name) } else { String::new() };
            crate::out!("{label}{}", file.text);
        }
        return Ok(0);
    };
    let written = write(dir, &exported)?;
    if out.json {
        out.json_line(&serde_json::json!({
            "written": written,
            "format": format!("{:?}", args.format).to_lowercase(),
            "not_exported": exported.untranslated.len(),
        }));
    } else {
        let left_out = match exported.untranslated.len() {
            0 => String::new(),
            n => format!("; {n} thing(s) not exported (listed above)"),
        };
        out.text(&format!("wrote {} file(s) to {}{left_out}", written.len(), dir.display()));
    }
    Ok(0)
}

fn current_dir() -> Result<PathBuf> {
    let here = std::env::current_dir().map_err(|e| Error::context("current directory", e))?;
    Ok(here.canonicalize().unwrap_or(here))
}

/// The output directory as it will be: canonical where it exists already.
fn absolute(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// Each file written whole: a temporary file beside it, then moved over it.
fn write(dir: &Path, exported: &Exported) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::context(format!("cannot create {}", dir.display()), e))?;
    let mut written = Vec::new();
    for file in &exported.files {
        let path = dir.join(&file.name);
        let temp = dir.join(format!(".{}.export-{}", file.name, std::process::id()));
        std::fs::write(&temp, &file.text).and_then(|()| std::fs::rename(&temp, &path)).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Error::context(format!("cannot write {}", path.display()), e)
        })?;
        written.push(path);
    }
    Ok(written)
}
