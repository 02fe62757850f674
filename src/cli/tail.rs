use super::{JobKeyArg, Output};
use crate::client::Client;
use crate::error::Result;
use crate::logs::Stream;
use crate::logs::filter::line_level;
use crate::protocol::{Level, LineFilter, LineView, Request, Response, TailRequest};
use crate::render::{Colour, paint};

/// The filter flags `tail` and `diff` share.
#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only lines from this stream.
    #[arg(long, value_enum)]
    pub stream: Option<Stream>,
    /// Remove ANSI escape codes.
    #[arg(long)]
    pub strip_ansi: bool,
    /// Only lines matching this regex.
    #[arg(long)]
    pub filter_regex: Option<String>,
}

impl FilterArgs {
    pub fn to_filter(&self, level: Option<Level>) -> LineFilter {
        LineFilter {
            stream: self.stream,
            strip_ansi: self.strip_ansi,
            regex: self.filter_regex.clone(),
            level,
            since_ms: None,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub job: JobKeyArg,
    /// How many lines.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub lines: usize,
    /// A summary instead of lines: counts of errors and warnings, and the last error.
    #[arg(long)]
    pub digest: bool,
    /// Only lines mentioning errors (error) or warnings and errors (warn).
    #[arg(long, value_enum)]
    pub level: Option<Level>,
    /// Keep printing new lines, across restarts, until the job is finished or killed.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

impl Args {
    /// The plain `tail JOB --lines N`.
    pub fn last_lines(job: JobKeyArg, lines: usize) -> Args {
        Args {
            job,
            lines,
            digest: false,
            level: None,
            follow: false,
            filter: FilterArgs { stream: None, strip_ansi: false, filter_regex: None },
        }
    }
}

pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let req = TailRequest {
        job: args.job.key()?,
        lines: args.lines,
        filter: args.filter.to_filter(args.level),
        digest: args.digest,
        follow: args.follow && !args.digest,
    };
    if req.follow {
        client.send(Request::Tail(req))?;
        loop {
            match client.receive()? {
                Response::Lines { lines, .. } => print_lines(&lines, out, true),
                Response::End { .. } => return Ok(0),
                other => return Err(crate::client::unexpected(&other)),
            }
        }
    }
    if !req.digest {
        let mut printer = LinesPrinter::new(out);
        client.tail_each(req, |lines| printer.add("", &lines))?;
        printer.finish("");
        return Ok(0);
    }
    match client.call(Request::Tail(req))? {
        Response::Digest(d) if out.json => out.json_line(&d),
        Response::Digest(d) => out.text(&format!(
            "{} lines, {} errors, {} warnings\nlast error: {}",
            d.lines,
            paint(&d.errors.to_string(), Colour::Red, out.colour && d.errors > 0),
            paint(&d.warnings.to_string(), Colour::Yellow, out.colour && d.warnings > 0),
            d.last_error.as_deref().unwrap_or("-")
        )),
        other => return Err(crate::client::unexpected(&other)),
    }
    Ok(0)
}

/// Prints a large answer as its frames arrive: as text, or as the one JSON object
/// `{<head>"lines":[...]}` written piece by piece, so no answer has to fit in memory at once.
pub struct LinesPrinter<'a> {
    out: &'a Output,
    started: bool,
}

impl<'a> LinesPrinter<'a> {
    pub fn new(out: &'a Output) -> Self {
        LinesPrinter { out, started: false }
    }

    /// `head` goes before `"lines"` in the JSON object (e.g. `"cursor":5,`).
    pub fn add(&mut self, head: &str, lines: &[LineView]) {
        if !self.out.json {
            return print_lines(lines, self.out, false);
        }
        let mut text = String::new();
        for line in lines {
            if self.started {
                text.push(',');
            } else {
                text = format!("{{{head}\"lines\":[");
                self.started = true;
            }
            text.push_str(&serde_json::to_string(line).unwrap_or_default());
        }
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    pub fn finish(self, head: &str) {
        if self.out.json {
            let open = if self.started { String::new() } else { format!("{{{head}\"lines\":[") };
            self.out.text(&format!("{open}]}}"));
        }
    }
}

/// Lines as text, errors in red and warnings in yellow; as NDJSON when following into a pipe.
pub fn print_lines(lines: &[LineView], out: &Output, streaming: bool) {
    if out.json {
        if streaming {
            for line in lines {
                out.json_line(line);
            }
        } else {
            out.json_line(&serde_json::json!({ "lines": lines }));
        }
        return;
    }
    let mut text = String::new();
    for line in lines {
        let colour = match line_level(&line.content) {
            Some(2) => Some(Colour::Red),
            Some(_) => Some(Colour::Yellow),
            None => None,
        };
        match colour {
            Some(c) if out.colour => text.push_str(&paint(&line.content, c, true)),
            _ => text.push_str(&line.content),
        }
        text.push('\n');
    }
    if !text.is_empty() {
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}
