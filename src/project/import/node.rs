//! Evaluating a JavaScript ecosystem file the way PM2 loads it: `require` (CommonJS, or an array),
//! `import()` for ES modules (`export default`), in a `node` of its own, with the caller's
//! environment and directory (such files compute values and read `process.env`), within a time
//! limit. What it prints goes to stderr, so the answer on stdout stays one line of JSON.

use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How PM2 reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `ecosystem.config.js`, `.cjs`, `.mjs`: a module, required.
    Module,
    /// A `.json` file that is not strict JSON (comments, trailing commas): PM2 evaluates it as a
    /// JavaScript expression.
    Expression,
}

const SCRIPT: &str = r#"
const fs = require('fs'), path = require('path'), url = require('url'), vm = require('vm');
const [file, form] = process.argv.slice(1);
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const answer = (v) => write(JSON.stringify(v, (k, x) => x instanceof RegExp ? x.source : x) + '\n', () => process.exit(0));
const fail = (e) => {
  const lines = String((e && e.stack) || '').split('\n');
  const at = lines.map((l) => l.match(/((?:file:\/\/)?\/[^()]*?:\d+)(?::\d+)?\)?\s*$/)).filter(Boolean)
    .map((m) => m[1]).find((l) => l.includes(path.basename(file)));
  answer({ error: e instanceof Error ? `${e.name}: ${String(e.message).split('\n')[0]}` : `threw ${String(e)}`, at: at || null });
};
(async () => {
  let conf;
  if (form === 'expression') {
    conf = vm.runInThisContext('(' + fs.readFileSync(file, 'utf8') + ')', { filename: file });
  } else {
    try {
      conf = require(file);
    } catch (e) {
      if (!e || (e.code !== 'ERR_REQUIRE_ESM' && e.code !== 'ERR_REQUIRE_ASYNC_MODULE')) throw e;
      conf = await import(url.pathToFileURL(file).href);
    }
    if (Object.prototype.toString.call(conf) === '[object Module]') conf = conf.default;
  }
  if (conf === undefined || conf === null) throw new Error('it exports nothing (module.exports = {...} or export default {...})');
  answer({ ok: conf });
})().catch(fail);
"#;

/// The value the file exports, as JSON (functions left out, regexes as their source).
pub fn evaluate(file: &Path, form: Form, timeout: Duration) -> Result<Value> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::context("cannot start a runtime to run node", e))?;
    let output = runtime.block_on(async {
        let child = tokio::process::Command::new("node")
            .arg("-e")
            .arg(SCRIPT)
            .arg(file)
            .arg(match form {
                Form::Module => "module",
                Form::Expression => "expression",
            })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A file that never finishes is killed when the wait for it is given up.
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(&name)),
            Err(e) => return Err(Error::context("cannot run node", e)),
        };
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(output) => output.map_err(|e| Error::context("node", e)),
            Err(_) => Err(Error::bad_input(format!(
                "{name} did not finish evaluating within {} (a loop, or a wait for something?); nothing was written",
                humantime::format_duration(timeout)
            ))),
        }
    })?;
    answer(&name, &output)
}

/// The one line said when there is no node.
pub fn missing(name: &str) -> Error {
    Error::of(
        ErrorKind::System,
        format!(
            "node is not installed (or not on PATH), and {name} is JavaScript that only node can evaluate; \
             the .json and .yaml forms of an ecosystem file import without node"
        ),
    )
}

fn answer(name: &str, output: &std::process::Output) -> Result<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reply: Option<Value> = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok());
    let failed =
        |what: String| Error::bad_input(format!("cannot evaluate {name} with node: {what}; nothing was written"));
    match reply {
        Some(Value::Object(mut reply)) => {
            if let Some(conf) = reply.remove("ok") {
                return Ok(conf);
            }
            let error = reply.get("error").and_then(Value::as_str).unwrap_or("it failed").to_string();
            let at = reply.get("at").and_then(Value::as_str).and_then(|at| at.rsplit_once(':'));
            Err(failed(match at {
                Some((_, line)) => format!("{error} (line {line})"),
                None => error,
            }))
        }
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            Err(failed(format!("node ended ({}) before it exported anything: {}", output.status, last.trim())))
        }
    }
}
