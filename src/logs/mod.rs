//! Job output on disk. The shim writes one record per line (or per fragment of a line still being
//! written) to `output.log`; readers put the lines back together exactly as the program wrote them.
//!
//! A record is `<unix_ms> <line_number> <stream> <content>\n`, where `stream` is `o`, `e` or `p`
//! (stdout, stderr, pty) for a record that ends its line, or `O`, `E`, `P` for a fragment whose line
//! continues in a later record with the same line number. Content never contains `\n`, so records
//! can be found from any byte offset.

pub mod filter;
pub mod reader;
pub mod terminal;
pub mod watch;
pub mod writer;

pub use crate::protocol::Stream;

impl Stream {
    fn tag(self, complete: bool) -> u8 {
        let t = match self {
            Stream::Stdout => b'o',
            Stream::Stderr => b'e',
            Stream::Pty => b'p',
        };
        if complete { t } else { t.to_ascii_uppercase() }
    }

    fn from_tag(tag: u8) -> Option<(Stream, bool)> {
        let stream = match tag.to_ascii_lowercase() {
            b'o' => Stream::Stdout,
            b'e' => Stream::Stderr,
            b'p' => Stream::Pty,
            _ => return None,
        };
        Some((stream, tag.is_ascii_lowercase()))
    }
}

/// One line of output, reassembled from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub stream: Stream,
    /// When the line's last record was written.
    pub unix_ms: u64,
    pub content: Vec<u8>,
    /// False while the program has not finished the line yet.
    pub complete: bool,
}

impl Line {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

pub const LOG_FILE: &str = "output.log";
