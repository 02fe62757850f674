//! Which lines `tail`, `diff` and `--follow` show, and how.

use super::Line;
use crate::error::{Error, Result};
use crate::protocol::{Level, LineFilter, LineView};
use regex::Regex;
use std::sync::LazyLock;

static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])").expect("valid regex")
});

pub fn strip_ansi(s: &str) -> String {
    ANSI.replace_all(s, "").into_owned()
}

/// A [`LineFilter`] with its regex compiled once.
pub struct Compiled {
    filter: LineFilter,
    regex: Option<Regex>,
}

impl Compiled {
    pub fn new(filter: &LineFilter) -> Result<Compiled> {
        let regex = match &filter.regex {
            Some(r) => {
                Some(Regex::new(r).map_err(|e| Error::new(format!("--filter-regex {r:?} is not a valid regex: {e}")))?)
            }
            None => None,
        };
        Ok(Compiled { filter: filter.clone(), regex })
    }

    pub fn keeps(&self, line: &Line) -> bool {
        if self.filter.stream.is_some_and(|s| s != line.stream) {
            return false;
        }
        if self.filter.since_ms.is_some_and(|since| line.unix_ms < since) {
            return false;
        }
        if self.regex.is_none() && self.filter.level.is_none() {
            return true;
        }
        let text = strip_ansi(&line.text());
        if let Some(level) = self.filter.level
            && line_level(&text) < Some(level_rank(level))
        {
            return false;
        }
        self.regex.as_ref().is_none_or(|r| r.is_match(&text))
    }

    pub fn view(&self, line: &Line) -> LineView {
        let text = line.text();
        LineView {
            line_number: line.number,
            content: if self.filter.strip_ansi { strip_ansi(&text) } else { text },
            timestamp: Some(crate::clock::rfc3339_ms(line.unix_ms)),
            stream: line.stream,
        }
    }
}

fn level_rank(level: Level) -> u8 {
    match level {
        Level::Warn => 1,
        Level::Error => 2,
    }
}

/// 2 for a line that mentions an error, 1 for a warning, None otherwise (case-insensitive).
/// `--level warn` shows warnings and errors; `--level error` only errors.
pub fn line_level(text: &str) -> Option<u8> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("error") {
        Some(2)
    } else if lower.contains("warn") {
        Some(1)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    fn line(text: &str, stream: Stream) -> Line {
        Line { number: 1, stream, unix_ms: 0, content: text.as_bytes().to_vec(), complete: true, run: 0 }
    }

    #[test]
    fn strips_colour_codes() {
        assert_eq!(strip_ansi("\x1b[1;31mERROR\x1b[0m: x"), "ERROR: x");
        assert_eq!(strip_ansi("\x1b]0;title\x07plain"), "plain");
    }

    #[test]
    fn filters_by_level_stream_and_regex() {
        let warn = Compiled::new(&LineFilter { level: Some(Level::Warn), ..Default::default() }).unwrap();
        assert!(warn.keeps(&line("WARNING: disk", Stream::Stdout)));
        assert!(warn.keeps(&line("Error: boom", Stream::Stdout)));
        assert!(!warn.keeps(&line("all good", Stream::Stdout)));
        let err = Compiled::new(&LineFilter { level: Some(Level::Error), ..Default::default() }).unwrap();
        assert!(!err.keeps(&line("warn: x", Stream::Stdout)));
        let stderr = Compiled::new(&LineFilter { stream: Some(Stream::Stderr), ..Default::default() }).unwrap();
        assert!(!stderr.keeps(&line("x", Stream::Stdout)));
        let re = Compiled::new(&LineFilter { regex: Some("^GET /\\d".into()), ..Default::default() }).unwrap();
        assert!(re.keeps(&line("\x1b[32mGET /1\x1b[0m", Stream::Stdout)));
        assert!(Compiled::new(&LineFilter { regex: Some("(".into()), ..Default::default() }).is_err());
        let recent = Compiled::new(&LineFilter { since_ms: Some(10), ..Default::default() }).unwrap();
        let at = |unix_ms| Line { unix_ms, ..line("x", Stream::Stdout) };
        assert!(!recent.keeps(&at(9)) && recent.keeps(&at(10)));
    }
}
