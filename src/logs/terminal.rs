//! A PTY job's screen rebuilt by replaying its recent output through a terminal emulator: for
//! runs whose supervisor kept no live screen (started by an earlier bgrun).

use super::reader;
use std::io;
use std::num::NonZeroU16;
use std::path::Path;

/// How much of a run's recent output is replayed: enough for a full-screen program's redraws.
const REPLAY: u64 = 256 * 1024;

/// The terminal of the run whose output starts at `run_offset` in `log`, as a `cols`×`rows`
/// screen now shows it.
pub fn replay(log: &Path, run_offset: u64, cols: u16, rows: u16) -> io::Result<vt100::Parser> {
    let bytes = reader::terminal_bytes(log, run_offset, REPLAY)?;
    let size = |n: u16| NonZeroU16::new(n.max(1)).expect("at least 1");
    let mut term = vt100::Parser::new(size(rows), size(cols), 0);
    term.process(&bytes);
    Ok(term)
}
