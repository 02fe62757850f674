//! A PTY job's terminal as it is now, kept by its shim (where the PTY master lives): every byte the
//! program wrote goes through a terminal emulator of the terminal's current size, and the screen is
//! written to `screen.json` (at most every [`EVERY`]) for `screen` and `attach` to show. Unlike a
//! replay of recent output, it is right at any age and after any resize.

use super::files::{self, ScreenFile};
use std::num::NonZeroU16;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest a written screen lags behind the terminal.
const EVERY: Duration = Duration::from_millis(100);

pub struct LiveScreen {
    term: vt100::Parser,
    /// Changed since it was last written.
    dirty: bool,
    written_at: Option<Instant>,
}

fn size(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n.max(1)).unwrap_or(NonZeroU16::MIN)
}

impl LiveScreen {
    pub fn new(cols: u16, rows: u16) -> LiveScreen {
        LiveScreen { term: vt100::Parser::new(size(rows), size(cols), 0), dirty: true, written_at: None }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.term.process(bytes);
        self.dirty = true;
    }

    /// Marks the screen to be written again (what it was written with changed).
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.term.screen_mut().set_size(size(rows), size(cols));
        self.dirty = true;
    }

    /// How long until a pending change is due to be written; None when nothing is pending.
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        self.dirty.then(|| self.written_at.map_or(Duration::ZERO, |at| (at + EVERY).saturating_duration_since(now)))
    }

    /// Whether a change is due to be written (or `now_anyway`, if anything changed).
    pub fn is_due(&self, now_anyway: bool) -> bool {
        self.dirty && (now_anyway || self.due_in(Instant::now()) == Some(Duration::ZERO))
    }

    /// Writes the screen, with the log's cursor after the output it shows.
    pub fn write(&mut self, dir: &Path, log_cursor: u64) {
        let screen = self.term.screen();
        let (rows, cols) = screen.size();
        let file = ScreenFile {
            cols: cols.get(),
            rows: rows.get(),
            formatted: screen.contents_formatted(),
            lines: screen.rows(0, cols.get()).map(|r| r.trim_end().to_string()).collect(),
            log_cursor,
        };
        // A full disk loses this snapshot, not the job: the next change writes it again.
        if files::write_screen(dir, &file).is_ok() {
            self.dirty = false;
            self.written_at = Some(Instant::now());
        }
    }
}
