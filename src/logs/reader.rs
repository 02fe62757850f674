//! Reads a job's log back as lines, through its index: forward from a cursor (for `diff`,
//! `--follow`, `expect` and readiness), or backward from the end (for `tail`), across rotated
//! segments. A cursor is an entry's sequence number, valid across rotations and restarts.

use super::index::{self, Entry, Segment};
use super::{Line, Stream};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Entries read from an index at a time.
const BLOCK: u64 = 1024;
/// Data read in one go for a block of neighbouring entries.
const SPAN: u64 = 4 << 20;

pub use super::index::end;

/// The segments holding entries from `cursor` on (all of them when the cursor is before the
/// oldest), oldest first. A cursor past the end means the log was replaced: start over.
fn segments_from(dir: &Path, cursor: u64) -> io::Result<(Vec<Segment>, u64)> {
    if let Some(current) = Segment::open(dir, 0)?
        && current.header.first_seq <= cursor
    {
        let cursor = if cursor > current.end_seq() { 0 } else { cursor };
        if cursor >= current.header.first_seq {
            return Ok((vec![current], cursor));
        }
    }
    let all = index::segments(dir)?;
    let end = all.last().map_or(0, |s| s.end_seq());
    let cursor = if cursor > end { 0 } else { cursor };
    Ok((all.into_iter().filter(|s| s.end_seq() > cursor).collect(), cursor))
}

/// What [`each_entry`] calls with each entry: its sequence number, itself and its bytes.
type Visit<'a> = dyn FnMut(u64, &Entry, &[u8]) -> ControlFlow<()> + 'a;

/// Calls `f` with every entry of `seg` in `from..to` (indices within the segment) and its bytes,
/// in order or in reverse, reading neighbouring entries' bytes in one go.
fn each_entry(seg: &Segment, from: u64, to: u64, backward: bool, f: &mut Visit<'_>) -> io::Result<ControlFlow<()>> {
    let blocks: Vec<u64> = (from..to).step_by(BLOCK as usize).collect();
    let ordered: Box<dyn Iterator<Item = &u64>> =
        if backward { Box::new(blocks.iter().rev()) } else { Box::new(blocks.iter()) };
    for &start in ordered {
        let entries = seg.entries(start, (start + BLOCK).min(to))?;
        let lo = entries.iter().map(|e| e.offset).min().unwrap_or(0);
        let hi = entries.iter().map(|e| e.offset.saturating_add(u64::from(e.len))).max().unwrap_or(0);
        let span = if hi - lo <= SPAN { Some(seg.read_at(lo, hi - lo)?) } else { None };
        let mut visit = |i: usize| -> io::Result<ControlFlow<()>> {
            let e = &entries[i];
            let seq = seg.header.first_seq + start + i as u64;
            Ok(match &span {
                Some(bytes) => {
                    let at = (e.offset - lo) as usize;
                    f(seq, e, &bytes[at..at + e.len as usize])
                }
                None => f(seq, e, &seg.bytes(e)?),
            })
        };
        let order: Box<dyn Iterator<Item = usize>> =
            if backward { Box::new((0..entries.len()).rev()) } else { Box::new(0..entries.len()) };
        for i in order {
            if visit(i)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A line's end as the program wrote it: a terminal ends lines with `\r\n`, and the `\r` is the
/// terminal's, not the program's.
fn finish_line(line: &mut Line) {
    if line.complete && line.stream == Stream::Pty && line.content.last() == Some(&b'\r') {
        line.content.pop();
    }
}

/// Reads lines forward from a cursor, in batches, holding the lines still unfinished between
/// batches so a line split across reads is never shown in pieces.
pub struct Forward {
    dir: PathBuf,
    cursor: u64,
    /// Reading stops at this cursor.
    until: u64,
    open: BTreeMap<u64, Line>,
}

impl Forward {
    pub fn new(dir: &Path, cursor: u64) -> Forward {
        Forward { dir: dir.to_path_buf(), cursor, until: u64::MAX, open: BTreeMap::new() }
    }

    /// Stops reading at `cursor` (what was written after it is left for another reader).
    pub fn until(self, cursor: u64) -> Forward {
        Forward { until: cursor, ..self }
    }

    /// Where the next read starts.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The lines finished in the entries after the cursor, in order, stopping once `max_lines`
    /// lines or `max_bytes` bytes of them are in hand (at an entry's end), or at the end of the
    /// log (or the reader's limit). Returns them and whether the end was reached.
    pub fn read(&mut self, max_lines: usize, max_bytes: usize) -> io::Result<(Vec<Line>, bool)> {
        let (segments, cursor) = segments_from(&self.dir, self.cursor)?;
        self.cursor = cursor;
        // Read from the oldest kept segment's start, the pieces of lines begun in a segment
        // rotated away are not lines any more: they are left out.
        let lost_before = segments.first().filter(|s| cursor <= s.header.first_seq).map_or(0, |s| s.header.next_line);
        let mut done: Vec<Line> = Vec::new();
        let mut bytes_done = 0;
        for seg in &segments {
            let from = self.cursor.saturating_sub(seg.header.first_seq);
            let to = seg.entries.min(self.until.saturating_sub(seg.header.first_seq));
            let flow = each_entry(seg, from, to, false, &mut |seq, e, bytes| {
                for piece in e.numbers(bytes) {
                    let line = match self.open.entry(piece.line) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        // The end of a line already shown in full (as a fragment) adds nothing.
                        std::collections::btree_map::Entry::Vacant(_)
                            if !piece.starts && (piece.bytes.is_empty() || piece.line < lost_before) =>
                        {
                            continue;
                        }
                        std::collections::btree_map::Entry::Vacant(v) => v.insert(Line {
                            number: piece.line,
                            stream: e.stream,
                            unix_ms: e.unix_ms,
                            content: Vec::new(),
                            complete: false,
                            run: e.run,
                        }),
                    };
                    line.content.extend_from_slice(piece.bytes);
                    line.unix_ms = e.unix_ms;
                    if piece.ends {
                        let mut line = self.open.remove(&piece.line).expect("just seen");
                        line.complete = true;
                        finish_line(&mut line);
                        bytes_done += line.content.len();
                        done.push(line);
                    }
                }
                self.cursor = seq + 1;
                let full = done.len() >= max_lines || bytes_done >= max_bytes;
                if full { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })?;
            if flow.is_break() {
                done.sort_by_key(|l| l.number);
                return Ok((done, false));
            }
        }
        done.sort_by_key(|l| l.number);
        Ok((done, true))
    }

    /// Like [`Self::read`], and once the end is reached the lines still unfinished too, as far as
    /// they go (a prompt waiting for input): the reader forgets them, so what comes later of them
    /// comes as the rest of the line.
    pub fn read_to_end(&mut self, max_lines: usize, max_bytes: usize) -> io::Result<(Vec<Line>, bool)> {
        let (mut lines, end) = self.read(max_lines, max_bytes)?;
        if end {
            lines.extend(std::mem::take(&mut self.open).into_values());
            lines.sort_by_key(|l| l.number);
        }
        Ok((lines, end))
    }
}

/// Everything written after `cursor`, unfinished lines included: the lines and the cursor to
/// continue from.
pub fn read_from(dir: &Path, cursor: u64) -> io::Result<(Vec<Line>, u64)> {
    let mut reader = Forward::new(dir, cursor);
    let (lines, _) = reader.read_to_end(usize::MAX, usize::MAX)?;
    Ok((lines, reader.cursor()))
}

/// A line seen backward: its pieces from the last one.
struct Backward {
    stream: Stream,
    run: u8,
    unix_ms: u64,
    complete: bool,
    pieces: Vec<Vec<u8>>,
}

impl Backward {
    fn into_line(mut self, number: u64) -> Line {
        self.pieces.reverse();
        let mut line = Line {
            number,
            stream: self.stream,
            run: self.run,
            unix_ms: self.unix_ms,
            content: self.pieces.concat(),
            complete: self.complete,
        };
        finish_line(&mut line);
        line
    }
}

/// Where the last `n` lines for which `keep` is true begin: the cursor of the entry holding the
/// first one's start and its number. Reads backward from the end, so the cost follows what is
/// shown, not the size of the log. Collects the lines too when `collect` is set.
fn last_lines(
    dir: &Path,
    n: usize,
    keep: &dyn Fn(&Line) -> bool,
    collect: bool,
    until: u64,
) -> io::Result<(Vec<Line>, u64, u64)> {
    let segments = index::segments(dir)?;
    let mut partial: HashMap<u64, Backward> = HashMap::new();
    let mut found = Vec::new();
    let mut count = 0;
    // The entry where the first line found begins, and its number.
    let mut at = (0, 0);
    if n == 0 {
        let end = segments.last().map_or(0, |s| s.end_seq()).min(until);
        return Ok((found, end, u64::MAX));
    }
    for seg in segments.iter().rev().filter(|s| s.header.first_seq < until) {
        let to = seg.entries.min(until - seg.header.first_seq);
        let flow = each_entry(seg, 0, to, true, &mut |seq, e, bytes| {
            for piece in e.numbers(bytes).into_iter().rev() {
                let acc = partial.entry(piece.line).or_insert_with(|| Backward {
                    stream: e.stream,
                    run: e.run,
                    unix_ms: e.unix_ms,
                    complete: piece.ends,
                    pieces: Vec::new(),
                });
                acc.pieces.push(piece.bytes.to_vec());
                if !piece.starts {
                    continue;
                }
                let line = partial.remove(&piece.line).expect("just seen").into_line(piece.line);
                if keep(&line) {
                    count += 1;
                    at = (seq, line.number);
                    if collect {
                        found.push(line);
                    }
                    if count == n {
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        if flow.is_break() {
            found.sort_by_key(|l| l.number);
            return Ok((found, at.0, at.1));
        }
    }
    // What is left began in a segment rotated away: pieces of lines, not lines.
    found.sort_by_key(|l| l.number);
    if count == 0 {
        at = (segments.first().map_or(0, |s| s.header.first_seq), u64::MAX);
    }
    Ok((found, at.0, at.1))
}

/// The last `n` lines for which `keep` is true, in order.
pub fn read_last(dir: &Path, n: usize, keep: &dyn Fn(&Line) -> bool) -> io::Result<Vec<Line>> {
    Ok(last_lines(dir, n, keep, true, u64::MAX)?.0)
}

/// Where the last `n` lines before entry `until` for which `keep` is true start: a cursor to read
/// forward from (up to `until`), and the first of those lines' number (lines before it that end
/// after the cursor are not among them). For answers too big to hold at once. The same `until`
/// for both, taken once: a log that grows meanwhile (a job writing) must not move the lines found
/// past the end the forward read stops at.
pub fn locate_last(dir: &Path, n: usize, keep: &dyn Fn(&Line) -> bool, until: u64) -> io::Result<(u64, u64)> {
    let (_, cursor, first) = last_lines(dir, n, keep, false, until)?;
    Ok((cursor, first))
}

/// The bytes written after `cursor` in the order they were written (a terminal's output as the
/// terminal received it), and the cursor to continue from.
pub fn bytes_since(dir: &Path, cursor: u64) -> io::Result<(Vec<u8>, u64)> {
    let (segments, mut next) = segments_from(dir, cursor)?;
    let mut out = Vec::new();
    for seg in &segments {
        let from = next.saturating_sub(seg.header.first_seq);
        let _ = each_entry(seg, from, seg.entries, false, &mut |seq, _, bytes| {
            out.extend_from_slice(bytes);
            next = seq + 1;
            ControlFlow::Continue(())
        })?;
    }
    Ok((out, next))
}

/// About the last `window` bytes written at or after `from`, in order (whole entries).
pub fn last_bytes(dir: &Path, from: u64, window: usize) -> io::Result<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    for seg in index::segments(dir)?.iter().rev().filter(|s| s.end_seq() > from) {
        let start = from.saturating_sub(seg.header.first_seq);
        let flow = each_entry(seg, start, seg.entries, true, &mut |_, _, bytes| {
            total += bytes.len();
            chunks.push(bytes.to_vec());
            if total >= window { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })?;
        if flow.is_break() {
            break;
        }
    }
    chunks.reverse();
    Ok(chunks.concat())
}

/// Joins the pieces of a line that arrive in separate reads (a reader following a log sees a
/// line still being written first as an unfinished piece, then the rest).
#[derive(Default)]
pub struct Joiner {
    partial: HashMap<u64, Vec<u8>>,
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

#[cfg(test)]
mod tests {
    use super::super::writer::{Limits, LogWriter};
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bgrun-reader-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const BIG: Limits = Limits { max_size: u64::MAX, max_files: 1 };

    /// Writes the chunks, indexing unfinished lines after those whose index is in `partial_after`.
    fn write(name: &str, chunks: &[(Stream, &[u8])], partial_after: &[usize]) -> PathBuf {
        let d = dir(name);
        let mut w = LogWriter::open(&d, BIG).unwrap();
        for (i, (stream, data)) in chunks.iter().enumerate() {
            w.push(*stream, data, 1000 + i as u64);
            if partial_after.contains(&i) {
                w.flush_partial(std::time::Duration::ZERO);
            }
            w.flush().unwrap();
        }
        w.finish(9999).unwrap();
        d
    }

    fn lines_of(d: &Path) -> Vec<(u64, Stream, String, bool)> {
        let (lines, _) = read_from(d, 0).unwrap();
        let back = read_last(d, usize::MAX, &|_| true).unwrap();
        assert_eq!(lines, back, "forward and backward agree");
        lines.into_iter().map(|l| (l.number, l.stream, l.text(), l.complete)).collect()
    }

    #[test]
    fn a_line_written_in_pieces_is_one_line() {
        let d = write(
            "pieces",
            &[(Stream::Stdout, b"hel"), (Stream::Stdout, b"lo wor"), (Stream::Stdout, b"ld\nnext\n")],
            &[0],
        );
        assert_eq!(
            lines_of(&d),
            vec![(1, Stream::Stdout, "hello world".into(), true), (2, Stream::Stdout, "next".into(), true)]
        );
    }

    #[test]
    fn streams_do_not_mix_their_partial_lines() {
        let d = write(
            "streams",
            &[(Stream::Stdout, b"out-"), (Stream::Stderr, b"err line\n"), (Stream::Stdout, b"done\n")],
            &[0],
        );
        assert_eq!(
            lines_of(&d),
            vec![(1, Stream::Stdout, "out-done".into(), true), (2, Stream::Stderr, "err line".into(), true)]
        );
        assert_eq!(std::fs::read(d.join("output.log")).unwrap(), b"out-err line\ndone\n");
    }

    #[test]
    fn unterminated_last_line_is_kept_at_finish() {
        let d = write("unterminated", &[(Stream::Stdout, b"a\nno newline")], &[]);
        assert_eq!(lines_of(&d)[1], (2, Stream::Stdout, "no newline".into(), true));
    }

    #[test]
    fn pty_carriage_returns_are_the_terminals() {
        let d = write("pty", &[(Stream::Pty, b"one\r\ntwo\r\n")], &[]);
        assert_eq!(lines_of(&d)[0].2, "one");
        assert_eq!(lines_of(&d)[1].2, "two");
        assert_eq!(bytes_since(&d, 0).unwrap().0, b"one\r\ntwo\r\n");
    }

    #[test]
    fn a_follower_sees_an_unfinished_line_then_its_rest() {
        let d = dir("follow");
        let mut w = LogWriter::open(&d, BIG).unwrap();
        w.push(Stream::Stdout, b"Password: ", 1);
        w.flush_partial(std::time::Duration::ZERO);
        w.flush().unwrap();
        let (first, cursor) = read_from(&d, 0).unwrap();
        assert_eq!((first[0].text(), first[0].complete), ("Password: ".into(), false));
        w.push(Stream::Stdout, b"ok\n", 2);
        w.flush().unwrap();
        let (rest, _) = read_from(&d, cursor).unwrap();
        let mut joiner = Joiner::default();
        joiner.join(first[0].clone());
        let whole = joiner.join(rest[0].clone());
        assert_eq!((whole.number, whole.text(), whole.complete), (1, "Password: ok".into(), true));
    }

    #[test]
    fn the_last_lines_are_found_before_the_end_the_read_stops_at() {
        // A tail takes the log's end, then looks for the last lines: lines written in between
        // must not be found, or the read up to that end would return none of them.
        let d = dir("growing");
        let mut w = LogWriter::open(&d, BIG).unwrap();
        w.push(Stream::Stdout, b"one\ntwo\n", 1);
        w.flush_all().unwrap();
        let end = super::end(&d);
        w.push(Stream::Stdout, b"three\n", 2);
        w.flush_all().unwrap();
        let (cursor, first) = locate_last(&d, 1, &|_| true, end).unwrap();
        let lines = Forward::new(&d, cursor).until(end).read_to_end(usize::MAX, usize::MAX).unwrap().0;
        let got: Vec<String> = lines.iter().filter(|l| l.number >= first).map(|l| l.text()).collect();
        assert_eq!(got, ["two"]);
    }

    #[test]
    fn tail_reads_the_last_lines_of_a_large_log() {
        let d = dir("large");
        let mut w = LogWriter::open(&d, BIG).unwrap();
        for i in 1..=50_000u64 {
            w.push(Stream::Stdout, format!("line {i}\n").as_bytes(), i);
        }
        w.flush().unwrap();
        let last = read_last(&d, 3, &|_| true).unwrap();
        let got: Vec<_> = last.iter().map(|l| (l.number, l.text())).collect();
        assert_eq!(
            got,
            vec![(49_998, "line 49998".into()), (49_999, "line 49999".into()), (50_000, "line 50000".into())]
        );
        let sevens = read_last(&d, 2, &|l| l.text().ends_with("777")).unwrap();
        assert_eq!(sevens.iter().map(|l| l.number).collect::<Vec<_>>(), vec![48_777, 49_777]);
        let (from, first) = locate_last(&d, 10_000, &|_| true, u64::MAX).unwrap();
        assert_eq!(first, 40_001);
        let (after, _) = read_from(&d, from).unwrap();
        assert_eq!(after.iter().filter(|l| l.number >= first).count(), 10_000);
        let (all, end) = read_from(&d, 0).unwrap();
        assert_eq!(all.len(), 50_000);
        assert_eq!(end, index::end(&d));
        let (none, same) = read_from(&d, end).unwrap();
        assert!(none.is_empty());
        assert_eq!(same, end);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotation_keeps_every_retained_line_exactly_once() {
        let d = dir("rotate");
        let limits = Limits { max_size: 4096, max_files: 4 };
        let mut w = LogWriter::open(&d, limits).unwrap();
        let mut follower = Forward::new(&d, 0);
        let mut seen = Vec::new();
        for i in 1..=5_000u64 {
            // Lines split across reads, on two streams.
            let text = format!("line {i:05}\n");
            let (a, b) = text.as_bytes().split_at(3);
            let stream = if i % 3 == 0 { Stream::Stderr } else { Stream::Stdout };
            w.push(stream, a, i);
            w.push(stream, b, i);
            w.flush().unwrap();
            if i % 97 == 0 {
                let (lines, _) = follower.read(usize::MAX, usize::MAX).unwrap();
                seen.extend(lines.into_iter().map(|l| l.text()));
            }
        }
        w.finish(0).unwrap();
        seen.extend(follower.read(usize::MAX, usize::MAX).unwrap().0.into_iter().map(|l| l.text()));
        let want: Vec<String> = (1..=5_000).map(|i| format!("line {i:05}")).collect();
        assert_eq!(seen, want, "a follower that keeps up sees every line once, in order");
        let kept = read_last(&d, usize::MAX, &|_| true).unwrap();
        let texts: Vec<String> = kept.iter().map(|l| l.text()).collect();
        assert!(texts.len() > 500 && texts.len() < 5_000, "old segments were dropped: {}", texts.len());
        assert_eq!(texts[..], want[want.len() - texts.len()..], "the retained lines are the last ones, once each");
        assert!(!d.join("output.log.4").exists() && d.join("output.log.3").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
