//! Reads `output.log` back as lines: the last N (for `tail`), or everything after a byte offset (for
//! `diff`, `--follow` and log readiness).

use super::{Line, Stream};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// One parsed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub unix_ms: u64,
    pub number: u64,
    pub stream: Stream,
    pub complete: bool,
    pub content: &'a [u8],
}

pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let unix_ms = parse_u64(parts.next()?)?;
    let number = parse_u64(parts.next()?)?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(&[]);
    let [tag] = tag else { return None };
    let (stream, complete) = Stream::from_tag(*tag)?;
    Some(Record { unix_ms, number, stream, complete, content })
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Iterates over the complete records in `bytes` (which must start at a record boundary).
/// Returns the records and the length of the prefix they span; a trailing unfinished record is
/// left for the next read.
pub fn records(bytes: &[u8]) -> (Vec<Record<'_>>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(nl) = memchr::memchr(b'\n', &bytes[pos..]) {
        if let Some(r) = parse_record(&bytes[pos..pos + nl]) {
            out.push(r);
        }
        pos += nl + 1;
    }
    (out, pos)
}

/// Puts fragments with the same line number back together, in line order.
pub fn assemble(records: &[Record<'_>]) -> Vec<Line> {
    let mut lines: BTreeMap<u64, Line> = BTreeMap::new();
    for r in records {
        lines
            .entry(r.number)
            .and_modify(|l| {
                l.content.extend_from_slice(r.content);
                l.complete = r.complete;
                l.unix_ms = r.unix_ms;
            })
            .or_insert_with(|| Line {
                number: r.number,
                stream: r.stream,
                unix_ms: r.unix_ms,
                content: r.content.to_vec(),
                complete: r.complete,
            });
    }
    lines.into_values().collect()
}

/// Everything written after `offset`: the lines and the offset to continue from.
pub fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<Line>, u64)> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((vec![], offset)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    // A cursor past the end means the log was replaced; start over rather than show nothing forever.
    let offset = if offset > len { 0 } else { offset };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity((len - offset) as usize);
    file.read_to_end(&mut bytes)?;
    let (recs, used) = records(&bytes);
    Ok((assemble(&recs), offset + used as u64))
}

/// The bytes a terminal received over the last `window` bytes of the log after `from`, in the
/// order they were written: a complete line ends with the `\r\n` the terminal sent.
pub fn terminal_bytes(path: &Path, from: u64, window: u64) -> io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(window).max(from.min(len));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let skip = if start == from { 0 } else { memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1) };
    let (recs, _) = records(&bytes[skip..]);
    Ok(as_terminal(&recs))
}

/// The terminal bytes written after `offset`, and the offset to continue from.
pub fn terminal_bytes_since(path: &Path, offset: u64) -> io::Result<(Vec<u8>, u64)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (recs, used) = records(&bytes);
    Ok((as_terminal(&recs), offset + used as u64))
}

/// Records in the order they were written, as the terminal received them.
fn as_terminal(recs: &[Record<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in recs {
        out.extend_from_slice(r.content);
        if r.complete {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The last `n` lines for which `keep` is true. Reads backwards in growing windows, so the cost
/// follows what is shown, not the size of the log.
pub fn read_last(path: &Path, n: usize, keep: &dyn Fn(&Line) -> bool) -> io::Result<Vec<Line>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::with_capacity((len - start) as usize);
        file.by_ref().take(len - start).read_to_end(&mut bytes)?;
        // Skip the partial record we probably landed in the middle of.
        let from = if start == 0 { 0 } else { memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1) };
        let (recs, _) = records(&bytes[from..]);
        let mut lines = assemble(&recs);
        // The window may begin inside a line written in fragments: its first line could be
        // missing pieces, so it only counts once the window reaches the start of the file.
        if start > 0
            && let Some(first) = recs.first()
        {
            lines.retain(|l| l.number != first.number);
        }
        lines.retain(|l| keep(l));
        if lines.len() >= n || start == 0 {
            let skip = lines.len().saturating_sub(n);
            return Ok(lines.split_off(skip));
        }
        window = window.saturating_mul(4);
    }
}

/// Joins the fragments of a line that arrive in separate reads (a reader following a log sees a
/// line still being written first as an unfinished fragment, then the rest).
#[derive(Default)]
pub struct Joiner {
    partial: std::collections::HashMap<u64, Vec<u8>>,
}

impl Joiner {
    /// The line with everything seen of it so far; remembered while it is unfinished.
    pub fn join(&mut self, line: Line) -> Line {
        let mut content = self.partial.remove(&line.number).unwrap_or_default();
        content.extend_from_slice(&line.content);
        if !line.complete {
            self.partial.insert(line.number, content.clone());
        }
        Line { content, ..line }
    }
}

/// The number to give the next line of an existing log, so numbering carries on across restarts.
pub fn last_line_number(path: &Path) -> io::Result<u64> {
    let mut last = 0;
    for line in read_last(path, 1, &|_| true)? {
        last = line.number;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::super::writer::LogWriter;
    use super::*;

    fn write(chunks: &[(Stream, &[u8])], partial_after: &[usize]) -> Vec<u8> {
        let mut w = LogWriter::new(Vec::new(), 1);
        for (i, (stream, data)) in chunks.iter().enumerate() {
            w.push(*stream, data, 1000 + i as u64);
            if partial_after.contains(&i) {
                w.flush_partial(1000 + i as u64);
            }
        }
        w.finish(9999).unwrap();
        w.into_inner().unwrap()
    }

    fn lines_of(bytes: &[u8]) -> Vec<(u64, Stream, String, bool)> {
        let (recs, used) = records(bytes);
        assert_eq!(used, bytes.len());
        assemble(&recs).into_iter().map(|l| (l.number, l.stream, l.text(), l.complete)).collect()
    }

    #[test]
    fn a_line_written_in_pieces_is_one_line() {
        let out =
            write(&[(Stream::Stdout, b"hel"), (Stream::Stdout, b"lo wor"), (Stream::Stdout, b"ld\nnext\n")], &[0]);
        assert_eq!(
            lines_of(&out),
            vec![(1, Stream::Stdout, "hello world".into(), true), (2, Stream::Stdout, "next".into(), true)]
        );
    }

    #[test]
    fn streams_do_not_mix_their_partial_lines() {
        let out =
            write(&[(Stream::Stdout, b"out-"), (Stream::Stderr, b"err line\n"), (Stream::Stdout, b"done\n")], &[]);
        assert_eq!(
            lines_of(&out),
            vec![(1, Stream::Stderr, "err line".into(), true), (2, Stream::Stdout, "out-done".into(), true)]
        );
    }

    #[test]
    fn unterminated_last_line_is_kept_at_finish() {
        let out = write(&[(Stream::Stdout, b"a\nno newline")], &[]);
        assert_eq!(lines_of(&out)[1], (2, Stream::Stdout, "no newline".into(), true));
    }

    #[test]
    fn pty_carriage_returns_are_the_terminals() {
        let out = write(&[(Stream::Pty, b"one\r\ntwo\r\n")], &[]);
        assert_eq!(lines_of(&out)[0].2, "one");
        assert_eq!(lines_of(&out)[1].2, "two");
    }

    #[test]
    fn content_is_kept_byte_for_byte() {
        let out = write(&[(Stream::Stdout, b"a  b\t\x1b[31mred\x1b[0m \xff\n")], &[]);
        let (recs, _) = records(&out);
        assert_eq!(assemble(&recs)[0].content, b"a  b\t\x1b[31mred\x1b[0m \xff");
    }

    #[test]
    fn tail_reads_the_last_lines_of_a_large_log() {
        let dir = std::env::temp_dir().join(format!("bgrun-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("output.log");
        let mut w = LogWriter::new(Vec::new(), 1);
        for i in 1..=50_000u64 {
            w.push(Stream::Stdout, format!("line {i}\n").as_bytes(), i);
        }
        std::fs::write(&path, w.into_inner().unwrap()).unwrap();
        let last = read_last(&path, 3, &|_| true).unwrap();
        let got: Vec<_> = last.iter().map(|l| (l.number, l.text())).collect();
        assert_eq!(
            got,
            vec![(49_998, "line 49998".into()), (49_999, "line 49999".into()), (50_000, "line 50000".into())]
        );
        let sevens = read_last(&path, 2, &|l| l.text().ends_with("777")).unwrap();
        assert_eq!(sevens.iter().map(|l| l.number).collect::<Vec<_>>(), vec![48_777, 49_777]);
        assert_eq!(last_line_number(&path).unwrap(), 50_000);
        let (all, end) = read_from(&path, 0).unwrap();
        assert_eq!(all.len(), 50_000);
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        let (none, same) = read_from(&path, end).unwrap();
        assert!(none.is_empty());
        assert_eq!(same, end);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
