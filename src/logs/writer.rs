//! Writes a job's output as it comes: the bytes to `output.log` at once, exactly as the program
//! wrote them, and an index entry per read (see [`super::index`]). Used by the shim, so it must be
//! fast: the throughput of a chatty job is bounded by how quickly this keeps up with its pipe.
//!
//! The end of a line still being written (a prompt, a line written in pieces) is in the file at
//! once but indexed only once its line ends or it has waited [`Self::flush_partial`]'s delay, so
//! readers rarely see a line in fragments. A terminal's output is indexed at once: interactive
//! programs rarely end what they draw with a newline, and `attach` must show it without delay.

use super::Stream;
use super::index::{self, ENTRY_LEN, Entry, Header, Segment};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// An unfinished line longer than this is indexed in pieces, so one endless line cannot keep
/// its bytes from readers.
const MAX_HELD: u64 = 64 * 1024;
/// Reads of one stream within one millisecond share an entry up to this size: the index grows by
/// at most one entry per stream and millisecond, however small the program's writes.
const MAX_ENTRY: u64 = 1 << 20;
/// Index entries kept while the index cannot be written (a full disk), before they are given up.
const MAX_PENDING_ENTRIES: usize = 64 * 1024;

/// How big a log may grow: segments of `max_size` bytes, at most `max_files` of them (the current
/// one included), so a job's log never takes more than about `max_size * max_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub max_size: u64,
    pub max_files: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: crate::spec::DEFAULT_LOG_MAX_SIZE_MB * 1024 * 1024,
            max_files: crate::spec::DEFAULT_LOG_MAX_FILES,
        }
    }
}

/// Bytes in the data file that wait for their line's end before they are indexed.
#[derive(Debug, Clone, Copy)]
struct Held {
    offset: u64,
    len: u64,
    unix_ms: u64,
    since: std::time::Instant,
}

pub struct LogWriter {
    dir: PathBuf,
    data: File,
    index: File,
    /// Where the next byte goes in the data file.
    data_len: u64,
    /// The sequence number of the next entry.
    seq: u64,
    next_line: u64,
    /// Each run's unfinished lines: one run, except while a new run starts beside the old one
    /// (their lines must never be joined).
    runs: Vec<RunLines>,
    /// The newest entry, which reads of the same millisecond still extend.
    last: Option<Entry>,
    /// Entries not written to the index yet.
    pending: Vec<u8>,
    limits: Limits,
    /// Bytes of output that could not be written (a full disk) since the last successful write.
    dropped: u64,
    /// Why, and since when (unix ms).
    dropped_because: Option<(String, u64)>,
}

/// A run's unfinished lines, per stream.
#[derive(Debug, Clone, Copy)]
struct RunLines {
    run: u8,
    /// Each stream's unfinished line (as far as it is indexed).
    open: [Option<u64>; 3],
    held: [Option<Held>; 3],
}

const STREAMS: [Stream; 3] = [Stream::Stdout, Stream::Stderr, Stream::Pty];

/// Who wrote some bytes: which run of the job, on which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub run: u8,
    pub stream: Stream,
}

impl Source {
    fn slot(self) -> usize {
        self.stream as usize
    }
}

impl LogWriter {
    /// Continues the job's log, or starts it. Bytes a previous writer left in the data file
    /// without indexing them (it was killed between the two writes) are indexed first.
    pub fn open(dir: &Path, limits: Limits) -> io::Result<LogWriter> {
        let (data, index, at) = match continue_segment(dir)? {
            Some(found) => found,
            None => {
                let (seq, next_line) = match index::segments(dir)?.last() {
                    Some(older) => (older.end_seq(), older.tail()?.next_line),
                    None => (0, 1),
                };
                start_segment(dir, seq, next_line)?
            }
        };
        let mut w = LogWriter {
            dir: dir.to_path_buf(),
            data_len: data.metadata()?.len(),
            data,
            index,
            seq: at.seq,
            next_line: at.next_line,
            runs: Vec::new(),
            last: None,
            pending: Vec::new(),
            limits,
            dropped: 0,
            dropped_because: None,
        };
        let indexed_end = at.indexed_end;
        if w.data_len > indexed_end {
            let mut rest = vec![0u8; (w.data_len - indexed_end) as usize];
            // The writer's own descriptor only appends.
            File::open(index::data_path(dir, 0))?.read_exact_at(&mut rest, indexed_end)?;
            let from = Source { run: 0, stream: Stream::Stdout };
            w.index_bytes(from, indexed_end, &rest, crate::clock::unix_ms());
            w.flush_all()?;
        }
        Ok(w)
    }

    /// Adds bytes the program wrote to `stream`: to the data file at once, and to the index up
    /// to their last newline (the rest waits for its line's end, except a terminal's).
    pub fn push(&mut self, stream: Stream, data: &[u8], unix_ms: u64) {
        self.push_from(Source { run: 0, stream }, data, unix_ms);
    }

    /// [`Self::push`] for bytes of run `from.run` (while two runs of the job write at once).
    pub fn push_from(&mut self, from: Source, data: &[u8], unix_ms: u64) {
        let stream = from.stream;
        if data.is_empty() {
            return;
        }
        if self.dropped > 0 {
            self.say_what_was_lost();
        }
        let offset = self.data_len;
        let written = self.write_data(data);
        let data = &data[..written];
        if written == 0 {
            return;
        }
        let held = self.lines(from.run).held[from.slot()].take();
        // Held bytes right before these are indexed with them; held bytes elsewhere in the file
        // (another stream wrote since) are indexed on their own first.
        let (start, held_len) = match held {
            Some(h) if h.offset + h.len == offset => (h.offset, h.len),
            Some(h) => {
                self.index_held(from, h);
                (offset, 0)
            }
            None => (offset, 0),
        };
        let total = held_len + data.len() as u64;
        let cut = match memchr::memrchr(b'\n', data) {
            // A terminal's bytes are indexed at once, finished line or not.
            _ if stream == Stream::Pty => Some(data.len()),
            Some(nl) => Some(nl + 1),
            None => None,
        };
        match cut {
            Some(cut) => {
                let indexed = held_len + cut as u64;
                self.add_entry(from, start, indexed, &data[..cut], unix_ms);
                if indexed < total {
                    let since = std::time::Instant::now();
                    self.lines(from.run).held[from.slot()] =
                        Some(Held { offset: start + indexed, len: total - indexed, unix_ms, since });
                }
            }
            None => {
                let since = held.map_or_else(std::time::Instant::now, |h| h.since);
                let h = Held { offset: start, len: total, unix_ms, since };
                if total >= MAX_HELD {
                    self.index_held(from, h);
                } else {
                    self.lines(from.run).held[from.slot()] = Some(h);
                }
            }
        }
    }

    /// Writes to the data file; returns how much was written. What cannot be written (a full
    /// disk) is dropped and counted rather than kept, so memory stays bounded and the program is
    /// never blocked.
    fn write_data(&mut self, mut data: &[u8]) -> usize {
        let mut written = 0;
        while !data.is_empty() {
            match self.data.write(data) {
                Ok(0) => return self.lost(data.len() as u64, io::ErrorKind::WriteZero.into(), written),
                Ok(n) => {
                    written += n;
                    self.data_len += n as u64;
                    data = &data[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost(data.len() as u64, e, written),
            }
        }
        written
    }

    fn lost(&mut self, bytes: u64, e: io::Error, written: usize) -> usize {
        self.dropped += bytes;
        let since = crate::clock::unix_ms();
        self.dropped_because.get_or_insert_with(|| (e.to_string(), since));
        // The lines the lost bytes belonged to are cut: what comes next starts new ones.
        self.flush_partial(std::time::Duration::ZERO);
        for lines in &mut self.runs {
            lines.open = [None; 3];
        }
        written
    }

    /// A line on stderr saying how much was lost and why, once writing works again.
    fn say_what_was_lost(&mut self) {
        let now = crate::clock::unix_ms();
        let (why, since) = self.dropped_because.clone().unwrap_or_else(|| ("write failed".into(), now));
        let text = format!(
            "[bgrun] {} bytes of output were lost: the log could not be written ({why}) for {} ms\n",
            self.dropped,
            now.saturating_sub(since)
        );
        let (dropped, because) = (std::mem::take(&mut self.dropped), self.dropped_because.take());
        let offset = self.data_len;
        if self.write_data(text.as_bytes()) == text.len() {
            let run = self.runs.first().map_or(0, |r| r.run);
            self.index_bytes(Source { run, stream: Stream::Stderr }, offset, text.as_bytes(), now);
        } else {
            // Still failing: the notice comes with the next write that works.
            self.dropped += dropped;
            self.dropped_because = because;
        }
    }

    /// Indexes bytes already in the data file, at once and whole.
    fn index_bytes(&mut self, from: Source, offset: u64, bytes: &[u8], unix_ms: u64) {
        if let Some(h) = self.lines(from.run).held[from.slot()].take() {
            self.index_held(from, h);
        }
        self.add_entry(from, offset, bytes.len() as u64, bytes, unix_ms);
    }

    /// Indexes held bytes (which hold no newline) as a piece of their unfinished line.
    fn index_held(&mut self, from: Source, h: Held) {
        self.add_entry(from, h.offset, h.len, &[], h.unix_ms);
    }

    /// One entry for `len` bytes at `offset`, whose newlines are all in `tail` (the bytes before
    /// it hold none).
    fn add_entry(&mut self, from: Source, offset: u64, len: u64, tail: &[u8], unix_ms: u64) {
        if len == 0 {
            return;
        }
        let open = self.lines(from.run).open[from.slot()];
        let first_line = open.unwrap_or_else(|| {
            self.next_line += 1;
            self.next_line - 1
        });
        let newlines = memchr::memchr_iter(b'\n', tail).count() as u64;
        let ends_line = tail.last() == Some(&b'\n');
        if newlines > 0 {
            self.next_line += newlines - 1 + u64::from(!ends_line);
        }
        let next_line = self.next_line;
        self.lines(from.run).open[from.slot()] = match (newlines, ends_line) {
            (0, _) => Some(first_line),
            (_, true) => None,
            (_, false) => Some(next_line - 1),
        };
        // A read is at most the shim's buffer, a held line at most MAX_HELD plus one read.
        let len = len.min(u64::from(u32::MAX)) as u32;
        if let Some(last) = self.last.as_mut()
            && last.stream == from.stream
            && last.run == from.run
            && !last.closes
            && last.unix_ms == unix_ms
            && last.offset + u64::from(last.len) == offset
            && u64::from(last.len) + u64::from(len) <= MAX_ENTRY
        {
            // The same stream's next bytes, with nothing in between: the numbering runs on.
            last.len += len;
            last.next_line = self.next_line;
            return;
        }
        let entry = Entry {
            unix_ms,
            offset,
            len,
            stream: from.stream,
            continues: open.is_some(),
            closes: false,
            first_line,
            next_line: self.next_line,
            run: from.run,
        };
        self.push_entry(entry);
    }

    /// Makes `entry` the newest, queueing the one before it for the index.
    fn push_entry(&mut self, entry: Entry) {
        if let Some(last) = self.last.replace(entry) {
            last.encode(&mut self.pending);
            self.seq += 1;
        }
    }

    /// Queues the newest entry for the index: nothing will be added to it any more.
    fn seal(&mut self) {
        if let Some(last) = self.last.take() {
            last.encode(&mut self.pending);
            self.seq += 1;
        }
    }

    /// Whether an entry waits for the next millisecond (or [`Self::flush_all`]) to be written.
    pub fn unsealed(&self) -> bool {
        self.last.is_some()
    }

    pub fn has_partial(&self) -> bool {
        self.runs.iter().flat_map(|r| r.held).any(|h| h.is_some())
    }

    /// When the oldest held line end started waiting.
    pub fn partial_since(&self) -> Option<std::time::Instant> {
        self.runs.iter().flat_map(|r| r.held).flatten().map(|h| h.since).min()
    }

    /// Indexes every unfinished line that has waited `delay` (all of them for zero), so a prompt
    /// without a newline is visible.
    pub fn flush_partial(&mut self, delay: std::time::Duration) {
        for from in self.sources() {
            let held = &mut self.lines(from.run).held[from.slot()];
            if let Some(h) = held.take_if(|h| h.since.elapsed() >= delay) {
                self.index_held(from, h);
            }
        }
    }

    /// Writes the pending entries to the index (the newest too once its millisecond is over),
    /// then rotates if the segment is full. A write that fails (a full disk) keeps them for the
    /// next flush, up to a bound.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.last.is_some_and(|e| e.unix_ms != crate::clock::unix_ms()) {
            self.seal();
        }
        self.flush_pending()
    }

    /// Writes every entry to the index, the newest included.
    pub fn flush_all(&mut self) -> io::Result<()> {
        self.seal();
        self.flush_pending()
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        self.write_index()?;
        if self.data_len >= self.limits.max_size {
            self.rotate()?;
        }
        Ok(())
    }

    fn write_index(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            match self.index.write(&self.pending) {
                Ok(n) if (n as u64).is_multiple_of(ENTRY_LEN) && n > 0 => {
                    self.pending.drain(..n);
                }
                Ok(n) => {
                    // Half an entry must never stay in the index: cut back to the last whole one.
                    let whole = n as u64 / ENTRY_LEN * ENTRY_LEN;
                    let len = self.index.metadata()?.len();
                    self.index.set_len(len - (n as u64 - whole))?;
                    self.pending.drain(..whole as usize);
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let max = MAX_PENDING_ENTRIES * ENTRY_LEN as usize;
                    if self.pending.len() > max {
                        // The oldest are given up: their bytes stay in the file, unindexed.
                        let over = (self.pending.len() - max).next_multiple_of(ENTRY_LEN as usize);
                        self.pending.drain(..over);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Starts a new segment: the current files become `.1`, `.1` becomes `.2`, and so on; the
    /// oldest beyond the limit goes. Files are renamed, never copied or truncated, so a reader
    /// holding one open keeps reading it whole.
    fn rotate(&mut self) -> io::Result<()> {
        self.flush_partial(std::time::Duration::ZERO);
        self.seal();
        self.write_index()?;
        let dir = self.dir.clone();
        // Rotated segments kept besides the current one.
        let kept = self.limits.max_files.saturating_sub(1);
        let oldest = kept.max(1);
        remove_if_there(&index::index_path(&dir, oldest))?;
        remove_if_there(&index::data_path(&dir, oldest))?;
        for k in (1..kept).rev() {
            rename_if_there(&index::index_path(&dir, k), &index::index_path(&dir, k + 1))?;
            rename_if_there(&index::data_path(&dir, k), &index::data_path(&dir, k + 1))?;
        }
        // The old index stays reachable under one of its names throughout, and the new one
        // appears whole (renamed over the old name): a reader finds the data by inode.
        std::fs::hard_link(index::index_path(&dir, 0), index::index_path(&dir, 1))?;
        std::fs::rename(index::data_path(&dir, 0), index::data_path(&dir, 1))?;
        let (data, index, _) = start_segment(&dir, self.seq, self.next_line)?;
        self.data = data;
        self.index = index;
        self.data_len = 0;
        if kept == 0 {
            remove_if_there(&index::index_path(&dir, 1))?;
            remove_if_there(&index::data_path(&dir, 1))?;
        }
        Ok(())
    }

    /// Bytes of output dropped since the last write that worked.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The cursor after everything indexed so far (call [`Self::flush_all`] first).
    pub fn cursor(&self) -> u64 {
        self.seq + u64::from(self.last.is_some())
    }

    /// Run `run`'s unfinished lines.
    fn lines(&mut self, run: u8) -> &mut RunLines {
        let at = match self.runs.iter().position(|r| r.run == run) {
            Some(at) => at,
            None => {
                self.runs.push(RunLines { run, open: [None; 3], held: [None; 3] });
                self.runs.len() - 1
            }
        };
        &mut self.runs[at]
    }

    /// Every run and stream that may have an unfinished line.
    fn sources(&self) -> Vec<Source> {
        self.runs.iter().flat_map(|r| STREAMS.map(|stream| Source { run: r.run, stream })).collect()
    }

    /// The program is gone: its unfinished lines end here.
    pub fn finish(&mut self, unix_ms: u64) -> io::Result<()> {
        self.flush_partial(std::time::Duration::ZERO);
        for from in self.sources() {
            self.close_line(from, unix_ms);
        }
        self.flush_all()
    }

    /// Run `run` is gone while another goes on writing: its unfinished lines end here.
    pub fn finish_run(&mut self, run: u8, unix_ms: u64) {
        for stream in STREAMS {
            let from = Source { run, stream };
            if let Some(h) = self.lines(run).held[from.slot()].take() {
                self.index_held(from, h);
            }
            self.close_line(from, unix_ms);
        }
        self.runs.retain(|r| r.run != run);
    }

    fn close_line(&mut self, from: Source, unix_ms: u64) {
        let Some(line) = self.lines(from.run).open[from.slot()].take() else { return };
        self.seal();
        let entry = Entry {
            unix_ms,
            offset: self.data_len,
            len: 0,
            stream: from.stream,
            continues: true,
            closes: true,
            first_line: line,
            next_line: self.next_line,
            run: from.run,
        };
        self.push_entry(entry);
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The current segment's files, if they are there and belong together (a data file someone
/// replaced or truncated starts a new segment instead).
fn continue_segment(dir: &Path) -> io::Result<Option<(File, File, Resume)>> {
    let Some(seg) = Segment::open(dir, 0)? else { return Ok(None) };
    let data = crate::home::Home::open_private(&index::data_path(dir, 0))?;
    let tail = seg.tail()?;
    let meta = data.metadata()?;
    if meta.ino() != seg.header.data_ino || meta.len() < tail.indexed_end {
        return Ok(None);
    }
    let index = crate::home::Home::open_private(&index::index_path(dir, 0))?;
    Ok(Some((data, index, Resume { seq: seg.end_seq(), next_line: tail.next_line, indexed_end: tail.indexed_end })))
}

/// Where a writer takes up the current segment.
struct Resume {
    /// The next entry's sequence number.
    seq: u64,
    next_line: u64,
    /// Where the indexed bytes of the data file end.
    indexed_end: u64,
}

/// Creates a segment's files: the data file first, then the index naming it, which appears whole.
fn start_segment(dir: &Path, first_seq: u64, next_line: u64) -> io::Result<(File, File, Resume)> {
    let data_path = index::data_path(dir, 0);
    let data = match std::fs::symlink_metadata(&data_path) {
        // A data file without an index of its own (a log written before the index existed, or a
        // replaced one) is kept beside the new one rather than overwritten.
        Ok(_) => {
            std::fs::rename(&data_path, dir.join(format!("{}.orphan-{}", index::DATA_FILE, crate::clock::unix_ms())))?;
            crate::home::Home::open_private(&data_path)?
        }
        Err(_) => crate::home::Home::open_private(&data_path)?,
    };
    let header = Header { first_seq, data_ino: data.metadata()?.ino(), next_line };
    let tmp = dir.join(format!("{}.new", index::INDEX_FILE));
    remove_if_there(&tmp)?;
    let mut index = crate::home::Home::open_private(&tmp)?;
    index.write_all(&header.encode())?;
    std::fs::rename(&tmp, index::index_path(dir, 0))?;
    Ok((data, index, Resume { seq: first_seq, next_line, indexed_end: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bgrun-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const BIG: Limits = Limits { max_size: u64::MAX, max_files: 1 };

    #[test]
    fn the_data_file_holds_exactly_what_was_written() {
        let d = dir("exact");
        let mut w = LogWriter::open(&d, BIG).unwrap();
        w.push(Stream::Stdout, b"one\ntw", 1);
        w.push(Stream::Stderr, b"err\n", 2);
        w.push(Stream::Stdout, b"o\n\xff\x1b[31m\n", 3);
        w.finish(4).unwrap();
        assert_eq!(std::fs::read(d.join("output.log")).unwrap(), b"one\ntwerr\no\n\xff\x1b[31m\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn two_runs_writing_at_once_keep_their_lines_apart() {
        let d = dir("two-runs");
        let mut w = LogWriter::open(&d, BIG).unwrap();
        let (old, new) = (Source { run: 4, stream: Stream::Stdout }, Source { run: 5, stream: Stream::Stdout });
        w.push_from(old, b"old st", 1);
        w.flush_partial(std::time::Duration::ZERO);
        w.push_from(new, b"new line\n", 2);
        w.push_from(old, b"ill going\n", 3);
        w.push_from(new, b"half", 4);
        w.finish_run(5, 5);
        w.push_from(old, b"last\n", 6);
        w.finish(7).unwrap();
        let lines = crate::logs::reader::read_last(&d, 10, &|_| true).unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.run, l.text(), l.complete)).collect();
        let expected = [(4, "old still going", true), (5, "new line", true), (5, "half", true), (4, "last", true)];
        assert_eq!(got, expected.map(|(r, t, c)| (r, t.to_string(), c)));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_writer_killed_between_data_and_index_loses_nothing() {
        let d = dir("recover");
        let mut w = LogWriter::open(&d, BIG).unwrap();
        w.push(Stream::Stdout, b"indexed\n", 1);
        w.flush().unwrap();
        w.push(Stream::Stdout, b"not yet\n", 2);
        drop(w); // the pending entry is never written, as if killed
        let mut w = LogWriter::open(&d, BIG).unwrap();
        assert_eq!(w.next_line, 3, "the unindexed line was numbered on reopening");
        w.push(Stream::Stdout, b"third\n", 3);
        w.finish(4).unwrap();
        let lines = crate::logs::reader::read_last(&d, 10, &|_| true).unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.number, l.text())).collect();
        assert_eq!(got, vec![(1, "indexed".into()), (2, "not yet".into()), (3, "third".into())]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
