//! The side index of a job's log. `output.log` holds the job's output exactly as it was written;
//! `output.idx` says, for every read the shim made, which stream the bytes came from, when, where
//! they are in `output.log`, and how they number into lines. Readers go through the index only, so
//! bytes written but not yet indexed are invisible to them, never half-read.
//!
//! A log is a series of segments: the current one (`output.log` + `output.idx`) and rotated ones
//! (`output.log.1` + `output.idx.1`, the most recent, then `.2`...). Each index starts with a header
//! naming its first entry's sequence number (counted over the whole log, so a cursor stays valid
//! across rotations) and the inode of its data file (so a reader pairs them even while a rotation
//! renames them under it).

use super::Stream;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const DATA_FILE: &str = "output.log";
pub const INDEX_FILE: &str = "output.idx";
pub const ENTRY_LEN: u64 = 40;
pub const HEADER_LEN: u64 = 32;
const MAGIC: &[u8; 8] = b"bgrunix1";
/// More segments than any limit allows: a bound on how far a reader looks.
const MAX_SEGMENTS: u32 = 1000;

const CONTINUES: u8 = 1;
const CLOSES: u8 = 2;

/// One read of one stream (or, when `closes`, the end of a stream's unfinished line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub unix_ms: u64,
    /// Where the bytes are in the segment's data file.
    pub offset: u64,
    pub len: u32,
    pub stream: Stream,
    /// The first bytes continue the stream's unfinished line `first_line` rather than start it.
    pub continues: bool,
    /// No bytes: the stream's unfinished line `first_line` ends here (the program is gone).
    pub closes: bool,
    /// The number of the line the first byte belongs to.
    pub first_line: u64,
    /// The number the next new line gets. The lines that start inside the entry are numbered
    /// up to it: see [`Entry::numbers`].
    pub next_line: u64,
    /// Which run of the job wrote it, told apart while a new run starts beside the old one
    /// (a start-first replace): the shim numbers its runs 0, 1, 2… (wrapping).
    pub run: u8,
}

impl Entry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.unix_ms.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.first_line.to_le_bytes());
        out.extend_from_slice(&self.next_line.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.push(self.stream as u8);
        out.push(if self.continues { CONTINUES } else { 0 } | if self.closes { CLOSES } else { 0 });
        out.extend_from_slice(&[self.run, 0]);
    }

    pub fn decode(b: &[u8]) -> Option<Entry> {
        let u64_at = |i: usize| b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
        let stream = match *b.get(36)? {
            0 => Stream::Stdout,
            1 => Stream::Stderr,
            2 => Stream::Pty,
            _ => return None,
        };
        let flags = *b.get(37)?;
        Some(Entry {
            unix_ms: u64_at(0)?,
            offset: u64_at(8)?,
            first_line: u64_at(16)?,
            next_line: u64_at(24)?,
            len: u32::from_le_bytes(b.get(32..36)?.try_into().ok()?),
            stream,
            continues: flags & CONTINUES != 0,
            closes: flags & CLOSES != 0,
            run: *b.get(38)?,
        })
    }

    /// The entry's bytes cut at each newline, with the number of the line each piece belongs to
    /// and whether it ends that line. The first piece is line `first_line`; the pieces after a
    /// newline start new lines, numbered so that the last new one is `next_line - 1`.
    pub fn numbers<'a>(&self, bytes: &'a [u8]) -> Vec<Piece<'a>> {
        if self.closes {
            return vec![Piece { line: self.first_line, bytes: &[], ends: true, starts: false }];
        }
        let parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let k = parts.len() - 1;
        let unfinished_tail = !parts[k].is_empty();
        // New lines after the first piece: every piece between two newlines, and the last one
        // when it is not empty.
        let new = (k as u64).saturating_sub(1) + u64::from(k > 0 && unfinished_tail);
        let mut out = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            if i == k && i > 0 && !unfinished_tail {
                break;
            }
            // Saturating: a damaged entry numbers its lines wrongly, but never panics.
            let line = if i == 0 { self.first_line } else { self.next_line.saturating_sub(new) + (i as u64 - 1) };
            out.push(Piece { line, bytes: part, ends: i < k, starts: i > 0 || !self.continues });
        }
        out
    }
}

/// A piece of one line inside an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub line: u64,
    pub bytes: &'a [u8],
    /// The line ends with this piece.
    pub ends: bool,
    /// The line begins with this piece.
    pub starts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sequence number of the segment's first entry, counted over the whole log.
    pub first_seq: u64,
    /// The inode of the segment's data file.
    pub data_ino: u64,
    /// The line counter when the segment began (the next new line's number).
    pub next_line: u64,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for n in [self.first_seq, self.data_ino, self.next_line] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Header> {
        if b.get(..8)? != MAGIC {
            return None;
        }
        let u64_at = |i: usize| b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
        Some(Header { first_seq: u64_at(8)?, data_ino: u64_at(16)?, next_line: u64_at(24)? })
    }
}

/// Segment `k`'s files: 0 is the current one.
pub fn data_path(dir: &Path, k: u32) -> PathBuf {
    numbered(dir, DATA_FILE, k)
}

pub fn index_path(dir: &Path, k: u32) -> PathBuf {
    numbered(dir, INDEX_FILE, k)
}

fn numbered(dir: &Path, name: &str, k: u32) -> PathBuf {
    if k == 0 { dir.join(name) } else { dir.join(format!("{name}.{k}")) }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("the log's index is damaged: {what}"))
}

/// See [`Segment::tail`].
pub struct Tail {
    pub next_line: u64,
    pub indexed_end: u64,
}

/// A segment opened for reading: its index and the data file it describes.
pub struct Segment {
    index: File,
    data: File,
    pub header: Header,
    /// Entries in the index when it was opened (more may be appended later).
    pub entries: u64,
}

impl Segment {
    /// Opens segment `k`; None if there is no such segment (or it is being rotated away).
    pub fn open(dir: &Path, k: u32) -> io::Result<Option<Segment>> {
        let index = match File::open(index_path(dir, k)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut head = [0u8; HEADER_LEN as usize];
        index.read_exact_at(&mut head, 0).map_err(|_| corrupt("no header"))?;
        let header = Header::decode(&head).ok_or_else(|| corrupt("bad header"))?;
        // The data file is found by inode: a rotation may have renamed it since the index was
        // opened (or not yet, if the index was renamed first).
        let Some(data) = find_data(dir, header.data_ino, k) else { return Ok(None) };
        let mut seg = Segment { index, data, header, entries: 0 };
        seg.refresh()?;
        Ok(Some(seg))
    }

    /// Counts the entries written since it was opened.
    pub fn refresh(&mut self) -> io::Result<u64> {
        self.entries = self.index.metadata()?.len().saturating_sub(HEADER_LEN) / ENTRY_LEN;
        Ok(self.entries)
    }

    /// The sequence number after the segment's last entry.
    pub fn end_seq(&self) -> u64 {
        self.header.first_seq.saturating_add(self.entries)
    }

    /// What a writer taking up the segment needs from its last entries: the next line's number,
    /// and where the indexed bytes end. Entries are written in the order their lines end, not of
    /// their bytes: the furthest byte is among the last few.
    pub fn tail(&self) -> io::Result<Tail> {
        let last = self.entries(self.entries.saturating_sub(64), self.entries)?;
        Ok(Tail {
            next_line: last.last().map_or(self.header.next_line, |e| e.next_line),
            indexed_end: last.iter().map(|e| e.offset.saturating_add(u64::from(e.len))).max().unwrap_or(0),
        })
    }

    /// Entries `from..to` (indices within the segment).
    pub fn entries(&self, from: u64, to: u64) -> io::Result<Vec<Entry>> {
        let to = to.min(self.entries);
        if from >= to {
            return Ok(vec![]);
        }
        let mut buf = vec![0u8; ((to - from) * ENTRY_LEN) as usize];
        self.index.read_exact_at(&mut buf, HEADER_LEN + from * ENTRY_LEN)?;
        buf.chunks_exact(ENTRY_LEN as usize).map(|c| Entry::decode(c).ok_or_else(|| corrupt("bad entry"))).collect()
    }

    /// The bytes of an entry.
    pub fn bytes(&self, e: &Entry) -> io::Result<Vec<u8>> {
        self.read_at(e.offset, u64::from(e.len))
    }

    /// `len` bytes of the data file from `offset`; an error (not an allocation of whatever a
    /// damaged entry says) when they are not all there.
    pub fn read_at(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let size = self.data.metadata()?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(corrupt("an entry points past the end of its data"));
        }
        let mut buf = vec![0u8; len as usize];
        self.data.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

fn find_data(dir: &Path, ino: u64, k: u32) -> Option<File> {
    let around = [Some(k), Some(k + 1), k.checked_sub(1)];
    around.into_iter().flatten().find_map(|j| {
        let f = File::open(data_path(dir, j)).ok()?;
        (f.metadata().ok()?.ino() == ino).then_some(f)
    })
}

/// Every segment of the log, oldest first. A segment that disappears while they are listed
/// (rotated out) is left out.
pub fn segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut found = Vec::new();
    for k in 0..MAX_SEGMENTS {
        if !index_path(dir, k).exists() && k > 0 {
            break;
        }
        if let Some(s) = Segment::open(dir, k)? {
            found.push(s);
        }
    }
    // By content, not by name: a rotation during the listing may have shifted the names.
    found.sort_by_key(|s| s.header.first_seq);
    found.dedup_by_key(|s| s.header.first_seq);
    Ok(found)
}

/// The cursor at the end of the log: where output written from now on starts.
pub fn end(dir: &Path) -> u64 {
    Segment::open(dir, 0).ok().flatten().map_or(0, |s| s.end_seq())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(continues: bool, first_line: u64, next_line: u64) -> Entry {
        Entry {
            unix_ms: 1,
            offset: 0,
            len: 0,
            stream: Stream::Stdout,
            continues,
            closes: false,
            first_line,
            next_line,
            run: 0,
        }
    }

    #[test]
    fn entries_round_trip() {
        let e =
            Entry { unix_ms: 7, offset: 9, len: 11, stream: Stream::Pty, closes: true, run: 4, ..entry(true, 3, 5) };
        let mut buf = Vec::new();
        e.encode(&mut buf);
        assert_eq!(buf.len() as u64, ENTRY_LEN);
        assert_eq!(Entry::decode(&buf), Some(e));
        let h = Header { first_seq: 1, data_ino: 2, next_line: 3 };
        assert_eq!(h.encode().len() as u64, HEADER_LEN);
        assert_eq!(Header::decode(&h.encode()), Some(h));
    }

    #[test]
    fn pieces_are_numbered_like_the_writer_numbered_them() {
        let lines = |e: Entry, b: &[u8]| -> Vec<(u64, String, bool, bool)> {
            e.numbers(b).iter().map(|p| (p.line, String::from_utf8_lossy(p.bytes).into(), p.ends, p.starts)).collect()
        };
        // A fresh line 4, then 5 and 6 complete, then an unfinished 7: the next new line is 8.
        assert_eq!(
            lines(entry(false, 4, 8), b"a\nb\nc\nd"),
            vec![
                (4, "a".into(), true, true),
                (5, "b".into(), true, true),
                (6, "c".into(), true, true),
                (7, "d".into(), false, true)
            ]
        );
        // The end of line 2 (begun earlier), then line 9, finished: the next is 10.
        assert_eq!(
            lines(entry(true, 2, 10), b"end\nnine\n"),
            vec![(2, "end".into(), true, false), (9, "nine".into(), true, true)]
        );
        assert_eq!(lines(entry(true, 2, 10), b"more"), vec![(2, "more".into(), false, false)]);
        assert_eq!(lines(entry(false, 3, 4), b"\n"), vec![(3, "".into(), true, true)]);
    }
}
