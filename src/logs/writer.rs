//! Turns the byte streams of a job into log records. Used by the shim, so it must be fast: the
//! throughput of a chatty job is bounded by how quickly this keeps up with its pipe.

use super::Stream;
use std::io::{self, Write};

/// A fragment longer than this is written out even before its line ends, so one endless line
/// cannot grow memory without bound.
const MAX_PENDING: usize = 64 * 1024;

pub struct LogWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    next_line: u64,
    pending: [Pending; 3],
    /// Bytes of records that could not be written (a full disk) since the last successful write.
    dropped: u64,
    /// Why, and since when (unix ms).
    dropped_because: Option<(String, u64)>,
    /// The start of `buf` is the rest of a record already partly written: it must be written
    /// before anything else, or the file would hold a torn record.
    mid_record: bool,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Set once a fragment of this line has been written, so later fragments reuse its number.
    number: Option<u64>,
}

fn slot(stream: Stream) -> usize {
    stream as usize
}

impl<W: Write> LogWriter<W> {
    /// What the log is written to (the shim asks its file how long the log is).
    pub fn inner(&self) -> &W {
        &self.out
    }

    /// `next_line` continues the numbering of an existing log (see [`super::reader::last_line_number`]).
    pub fn new(out: W, next_line: u64) -> Self {
        LogWriter {
            out,
            buf: Vec::with_capacity(256 * 1024),
            next_line,
            pending: Default::default(),
            dropped: 0,
            dropped_because: None,
            mid_record: false,
        }
    }

    /// Adds bytes the program wrote to `stream`. Complete lines become records at once; the
    /// unfinished tail waits for more bytes or for [`Self::flush_partial`].
    pub fn push(&mut self, stream: Stream, mut data: &[u8], unix_ms: u64) {
        // Every line of one read shares its timestamp: format it once (this loop is the shim's
        // hot path for chatty jobs).
        let mut ts = itoa::Buffer::new();
        let ts = ts.format(unix_ms).as_bytes();
        self.buf.reserve(data.len() + data.len() / 4);
        while let Some(nl) = memchr::memchr(b'\n', data) {
            let (line, rest) = (&data[..nl], &data[nl + 1..]);
            let pending = &mut self.pending[slot(stream)];
            if pending.bytes.is_empty() && pending.number.is_none() {
                let n = self.next_line;
                self.next_line += 1;
                write_record(&mut self.buf, ts, n, stream.tag(true), trim_cr(stream, line));
            } else {
                let mut bytes = std::mem::take(&mut pending.bytes);
                bytes.extend_from_slice(line);
                let n = pending.number.take().unwrap_or_else(|| {
                    self.next_line += 1;
                    self.next_line - 1
                });
                write_record(&mut self.buf, ts, n, stream.tag(true), trim_cr(stream, &bytes));
                self.pending[slot(stream)].bytes = reuse(bytes);
            }
            data = rest;
        }
        if !data.is_empty() {
            self.pending[slot(stream)].bytes.extend_from_slice(data);
            if self.pending[slot(stream)].bytes.len() >= MAX_PENDING {
                self.flush_fragment(stream, unix_ms);
            }
        }
    }

    pub fn has_partial(&self) -> bool {
        self.pending.iter().any(|p| !p.bytes.is_empty())
    }

    /// Writes every unfinished line as a fragment, so a prompt without a newline is visible.
    pub fn flush_partial(&mut self, unix_ms: u64) {
        for stream in [Stream::Stdout, Stream::Stderr, Stream::Pty] {
            if !self.pending[slot(stream)].bytes.is_empty() {
                self.flush_fragment(stream, unix_ms);
            }
        }
    }

    fn flush_fragment(&mut self, stream: Stream, unix_ms: u64) {
        let next = &mut self.next_line;
        let pending = &mut self.pending[slot(stream)];
        let n = *pending.number.get_or_insert_with(|| {
            *next += 1;
            *next - 1
        });
        write_record(
            &mut self.buf,
            itoa::Buffer::new().format(unix_ms).as_bytes(),
            n,
            stream.tag(false),
            &pending.bytes,
        );
        pending.bytes.clear();
    }

    /// Hands buffered records to the file. When the file cannot take them (a full disk), they
    /// are dropped and counted rather than kept, so memory stays bounded and the program is never
    /// blocked; the first write that works again starts with a record saying what was lost.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        // Every line number before this one is written or lost: say what was lost, in order.
        if self.dropped > 0 {
            let (notice, number) = self.drop_notice();
            self.buf.extend_from_slice(&notice);
            self.next_line = number + 1;
            let (dropped, because) = (std::mem::take(&mut self.dropped), self.dropped_because.take());
            if let Err(e) = self.write_buffered() {
                // Still failing: the notice comes with the next write that works.
                self.dropped += dropped;
                self.dropped_because = because;
                return Err(e);
            }
        }
        Ok(())
    }

    fn write_buffered(&mut self) -> io::Result<()> {
        while !self.buf.is_empty() {
            match self.out.write(&self.buf) {
                Ok(0) => return Err(self.drop_buffered(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.mid_record = self.buf[n - 1] != b'\n';
                    self.buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.drop_buffered(e)),
            }
        }
        Ok(())
    }

    /// Bytes of records dropped since the last write that worked.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops what could not be written, keeping only the rest of a record already partly in the
    /// file (it is finished first once writing works again).
    fn drop_buffered(&mut self, e: io::Error) -> io::Error {
        let keep = if self.mid_record { memchr::memchr(b'\n', &self.buf).map_or(self.buf.len(), |i| i + 1) } else { 0 };
        self.dropped += (self.buf.len() - keep) as u64;
        self.buf.truncate(keep);
        let since = crate::clock::unix_ms();
        self.dropped_because.get_or_insert_with(|| (e.to_string(), since));
        e
    }

    /// A record (on stderr, with a line number of its own) saying how much was lost and why.
    fn drop_notice(&self) -> (Vec<u8>, u64) {
        let now = crate::clock::unix_ms();
        let (why, since) = self.dropped_because.clone().unwrap_or_else(|| ("write failed".into(), now));
        let text = format!(
            "[bgrun] {} bytes of output were lost: the log could not be written ({why}) for {} ms",
            self.dropped,
            now.saturating_sub(since)
        );
        let mut out = Vec::new();
        let n = self.next_line;
        write_record(
            &mut out,
            itoa::Buffer::new().format(now).as_bytes(),
            n,
            Stream::Stderr.tag(true),
            text.as_bytes(),
        );
        (out, n)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    /// The program is gone: its unfinished lines end here.
    pub fn finish(&mut self, unix_ms: u64) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr, Stream::Pty] {
            let pending = &mut self.pending[slot(stream)];
            if !pending.bytes.is_empty() || pending.number.is_some() {
                let n = pending.number.take().unwrap_or_else(|| {
                    self.next_line += 1;
                    self.next_line - 1
                });
                let bytes = std::mem::take(&mut pending.bytes);
                write_record(
                    &mut self.buf,
                    itoa::Buffer::new().format(unix_ms).as_bytes(),
                    n,
                    stream.tag(true),
                    &bytes,
                );
            }
        }
        self.flush()
    }
}

fn reuse(mut v: Vec<u8>) -> Vec<u8> {
    v.clear();
    v
}

/// A terminal ends lines with `\r\n`; the `\r` is the terminal's, not the program's.
fn trim_cr(stream: Stream, line: &[u8]) -> &[u8] {
    match (stream, line.last()) {
        (Stream::Pty, Some(b'\r')) => &line[..line.len() - 1],
        _ => line,
    }
}

fn write_record(buf: &mut Vec<u8>, unix_ms: &[u8], number: u64, tag: u8, content: &[u8]) {
    buf.extend_from_slice(unix_ms);
    buf.push(b' ');
    buf.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
    buf.push(b' ');
    buf.push(tag);
    buf.push(b' ');
    buf.extend_from_slice(content);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that fails every write while `full` is set, as a full disk does.
    struct Disk {
        data: Vec<u8>,
        full: bool,
    }

    impl Write for Disk {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.full {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.data.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_drops_and_counts_then_says_so() {
        let mut w = LogWriter::new(Disk { data: Vec::new(), full: false }, 1);
        w.push(Stream::Stdout, b"one\n", 1);
        w.flush().unwrap();
        w.out.full = true;
        w.push(Stream::Stdout, b"two\nthree\n", 2);
        assert!(w.flush().is_err());
        assert!(w.dropped() > 0, "what could not be written is counted");
        assert!(w.buf.is_empty(), "and not kept: memory stays bounded");
        w.out.full = false;
        w.push(Stream::Stdout, b"four\n", 3);
        w.flush().unwrap();
        assert_eq!(w.dropped(), 0);
        let text = String::from_utf8(w.out.data.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(" 1 o one"), "{text}");
        assert!(lines[1].ends_with(" 4 o four"), "{text}");
        assert!(lines[2].contains(" 5 e [bgrun] ") && lines[2].contains("bytes of output were lost"), "{text}");
    }
}
