//! Job output on disk: `output.log` holds what the job wrote, byte for byte, in the order it was
//! read (stdout and stderr together, as a terminal would show them); `output.idx` beside it says
//! which stream each read came from, when, and how it numbers into lines (see [`index`]). Readers
//! put the lines back together from the two.

pub mod filter;
pub mod index;
pub mod reader;
pub mod terminal;
pub mod watch;
pub mod writer;

pub use crate::protocol::Stream;

/// One line of output, reassembled from its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub stream: Stream,
    /// When the line's last piece was written.
    pub unix_ms: u64,
    pub content: Vec<u8>,
    /// False while the program has not finished the line yet.
    pub complete: bool,
    /// The run of the job that wrote it (see [`index::Entry::run`]).
    pub run: u8,
}

impl Line {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

pub use index::DATA_FILE as LOG_FILE;
