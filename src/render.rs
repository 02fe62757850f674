//! Human-facing formatting: times, durations, colours and tables.

use std::io::IsTerminal;
use std::time::Duration;

/// `3s`, `4m12s`, `2h5m`, `3d4h`: short enough for a table column.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

#[derive(Clone, Copy)]
pub enum Colour {
    Red,
    Green,
    Yellow,
    Blue,
    Dim,
}

/// Colours only where a person is looking, and never when NO_COLOR is set.
pub fn colours_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn paint(text: &str, colour: Colour, enabled: bool) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match colour {
        Colour::Red => "31",
        Colour::Green => "32",
        Colour::Yellow => "33",
        Colour::Blue => "34",
        Colour::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

pub fn state_colour(state: &str) -> Colour {
    match state {
        "ready" | "running" => Colour::Green,
        "starting" => Colour::Blue,
        "crashed" => Colour::Red,
        "killed" => Colour::Yellow,
        _ => Colour::Dim,
    }
}

/// Left-aligned columns; cells may contain colour codes, which take no width.
/// The width of the terminal on stdout, if it is one that knows its size.
pub fn terminal_width() -> Option<usize> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct, which outlives the call.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

/// `text` cut to `width` characters, ending in `…` when it was longer.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A state with its reason, unless the reason only repeats the state ("ready (ready)").
pub fn state_and_reason(state: &str, reason: &str) -> String {
    let repeats = reason.is_empty()
        || reason == state
        || matches!((state, reason), ("ready", "running (no readiness checks)") | ("running", "running"));
    if repeats { state.to_string() } else { format!("{state} ({reason})") }
}

/// A table with columns as wide as their widest cell; the last column is cut to fit `width`.
pub fn table_fitted(header: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    let visible = |s: &str| crate::logs::filter::strip_ansi(s).chars().count();
    let Some(width) = width else { return table(header, rows) };
    let last = header.len() - 1;
    let before: usize =
        (0..last).map(|i| rows.iter().map(|r| visible(&r[i])).chain([header[i].len()]).max().unwrap_or(0) + 2).sum();
    let room = width.saturating_sub(before).max(10);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            // The cut is made on the plain text: colours would be cut mid-sequence.
            r[last] = fit(&crate::logs::filter::strip_ansi(&r[last]), room);
            r
        })
        .collect();
    table(header, &rows)
}

pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let visible = |s: &str| crate::logs::filter::strip_ansi(s).chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible(cell));
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<String>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.into_iter().enumerate() {
            let pad = if i == last { 0 } else { widths[i] - visible(&cell) + 2 };
            out.push_str(&cell);
            out.push_str(&" ".repeat(pad));
        }
        out.push('\n');
    };
    push_row(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        push_row(row.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_that_repeats_the_state_is_left_out_and_long_text_is_cut() {
        assert_eq!(state_and_reason("ready", "running (no readiness checks)"), "ready");
        assert_eq!(state_and_reason("ready", "ready"), "ready");
        assert_eq!(state_and_reason("starting", "waiting for db to be ready"), "starting (waiting for db to be ready)");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_secs(5)), "5s");
        assert_eq!(short_duration(Duration::from_secs(252)), "4m12s");
        assert_eq!(short_duration(Duration::from_secs(7500)), "2h5m");
        assert_eq!(short_duration(Duration::from_secs(273600)), "3d4h");
    }

    #[test]
    fn table_aligns_despite_colours() {
        let t = table(&["A", "B"], &[vec![paint("x", Colour::Red, true), "y".into()]]);
        let lines: Vec<_> = t.lines().map(crate::logs::filter::strip_ansi).collect();
        assert_eq!(lines, vec!["A  B", "x  y"]);
    }
}
