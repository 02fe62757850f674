//! A PTY job's screen rebuilt by replaying its recent output through a terminal emulator: for
//! runs whose supervisor kept no live screen (started by an earlier bgrun).

use super::reader;
use std::io;
use std::num::NonZeroU16;
use std::path::Path;

/// How much of a run's recent output is replayed: enough for a full-screen program's redraws.
const REPLAY: usize = 256 * 1024;

/// The terminal of the run whose output starts at cursor `run_start` in the log of job directory
/// `dir`, as a `cols`×`rows` screen now shows it.
pub fn replay(dir: &Path, run_start: u64, cols: u16, rows: u16) -> io::Result<vt100::Parser> {
    let bytes = reader::last_bytes(dir, run_start, REPLAY)?;
    let size = |n: u16| NonZeroU16::new(n.max(1)).expect("at least 1");
    let mut term = vt100::Parser::new(size(rows), size(cols), 0);
    term.process(&bytes);
    Ok(term)
}
