//! `bgrun import`: another process manager's file in, `bgrun.toml` text out. PM2 ecosystem files
//! (JSON, YAML, or JavaScript evaluated by node), Procfiles and process-compose files are each read
//! into a [`draft::Draft`] by a translator of their own, and one renderer writes the file. Reading
//! the source (and running node) happens here, at the edge; the translators only look at the disk
//! to tell a file from a directory. Writing the result is the CLI's.

mod compose;
pub(crate) mod convert;
mod draft;
mod node;
mod pm2;
pub mod pm2_keys;
mod procfile;

pub use draft::Unsupported;

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The formats import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A PM2 ecosystem file: .js, .cjs, .mjs, .json, .yaml or .yml.
    Pm2,
    /// A Procfile (foreman, honcho, overmind).
    Procfile,
    /// A process-compose.yaml.
    ProcessCompose,
}

impl Format {
    /// What the format calls one of its entries, for reports: `app "api"`.
    pub fn entry(self) -> &'static str {
        match self {
            Format::Pm2 => "app",
            Format::Procfile => "process type",
            Format::ProcessCompose => "process",
        }
    }
}

/// What a translator knows besides the source itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// The source file's name, for comments and reports.
    pub file: String,
    /// The source's directory on disk.
    pub dir: PathBuf,
    /// The source's directory as seen from the output's: empty when they are the same, relative
    /// when one leads to the other, absolute otherwise. Relative paths of the source are moved by it.
    pub base: PathBuf,
    /// CPUs of this machine, for PM2's `instances: "max"`.
    pub cpus: usize,
}

/// What to import, and where the result will be written.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: PathBuf,
    /// The format, when it is not to be told from the file.
    pub format: Option<Format>,
    /// The directory the result will be written in.
    pub out_dir: PathBuf,
    /// How long a JavaScript ecosystem file may take to evaluate.
    pub node_timeout: Duration,
}

/// The result: the file's text, its jobs, and what could not be carried over.
#[derive(Debug, Clone)]
pub struct Imported {
    pub format: Format,
    pub toml: String,
    pub jobs: Vec<String>,
    pub unsupported: Vec<Unsupported>,
}

pub fn import(request: &Request) -> Result<Imported> {
    let source = &request.source;
    let file = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = std::fs::read_to_string(source)
        .map_err(|e| Error::bad_input(format!("cannot read {}: {e}", source.display())))?;
    let dir = directory(source.parent().unwrap_or(Path::new(".")))?;
    let out_dir = directory(&request.out_dir)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cx = Context { file: file.clone(), base: convert::path_between(&out_dir, &dir), dir, cpus };
    let lower = file.to_ascii_lowercase();
    let javascript = [".js", ".cjs", ".mjs"].iter().any(|e| lower.ends_with(e));
    let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
    // A YAML file is read once: its keys tell process-compose from PM2.
    let mut parsed = if yaml { Some(self::yaml(&text, &file)?) } else { None };
    let format = match (request.format, &parsed) {
        (Some(f), _) => f,
        (None, _) if file.starts_with("Procfile") => Format::Procfile,
        (None, _) if javascript || lower.ends_with(".json") => Format::Pm2,
        (None, Some(v)) if v.get("processes").is_some() => Format::ProcessCompose,
        (None, Some(v)) if v.get("apps").is_some() || v.is_array() => Format::Pm2,
        (None, Some(_)) if lower.starts_with("process-compose") => Format::ProcessCompose,
        (None, _) => return Err(unknown(&file)),
    };
    let mut yaml_value = || parsed.take().map_or_else(|| self::yaml(&text, &file), Ok);
    let draft = match format {
        Format::Procfile => procfile::translate(&text, &cx)?,
        Format::ProcessCompose => compose::translate(&yaml_value()?, &cx)?,
        Format::Pm2 if javascript => {
            pm2::translate(&node::evaluate(source, node::Form::Module, request.node_timeout)?, &cx)?
        }
        Format::Pm2 if yaml => pm2::translate(&yaml_value()?, &cx)?,
        Format::Pm2 => pm2::translate(&json(source, &text, request.node_timeout)?, &cx)?,
    };
    Ok(Imported {
        format,
        toml: draft.render(),
        jobs: draft.jobs.iter().map(|j| j.name.clone()).collect(),
        unsupported: draft.unsupported,
    })
}

fn directory(path: &Path) -> Result<PathBuf> {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    path.canonicalize().map_err(|e| Error::bad_input(format!("no directory {}: {e}", path.display())))
}

fn unknown(file: &str) -> Error {
    Error::bad_input(format!(
        "cannot tell what kind of file {file} is: name it Procfile, ecosystem.config.js (.json, .yaml) or \
         process-compose.yaml, or say it with --from pm2|procfile|process-compose"
    ))
}

/// YAML as JSON values, read as YAML 1.2 does (js-yaml for PM2, Go's yaml.v3 for process-compose):
/// `yes`, `on` and `0755` stay text, so an environment keeps what was written.
fn yaml(text: &str, file: &str) -> Result<Value> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ");
        Error::bad_input(format!("{file} is not valid YAML: {first}"))
    })
}

/// A `.json` ecosystem file: JSON, or what PM2 also accepts there (a JavaScript object with
/// comments or trailing commas), which only node can read.
fn json(source: &Path, text: &str, timeout: Duration) -> Result<Value> {
    serde_json::from_str(text).or_else(|json_error| {
        let file = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let not_json = Error::bad_input(format!("{file} is not valid JSON: {json_error}"));
        match node::evaluate(source, node::Form::Expression, timeout) {
            Ok(value) => Ok(value),
            // Node read it no better: the JSON error points at the place.
            Err(_) => Err(not_json),
        }
    })
}
