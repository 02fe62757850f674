//! Copies of a job's output in files the user names (`stdout`, `stderr`, `log`), written by its
//! shim beside bgrun's own log, exactly as the program wrote them (or each line prefixed with its
//! time, with `log-timestamps`), for tools that expect plain log files.

use super::files::SpawnFile;
use crate::protocol::Stream;
use std::fs::File;
use std::io::Write;

pub struct Mirror {
    out: Option<File>,
    err: Option<File>,
    merged: Option<File>,
    timestamps: bool,
    /// Per stream (stdout or terminal, stderr): the next byte begins a line.
    line_start: [bool; 2],
}

fn open(spawn: &SpawnFile, path: &Option<std::path::PathBuf>) -> Result<Option<File>, String> {
    let Some(path) = path else { return Ok(None) };
    let path = spawn.cwd.join(path);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map(Some)
        .map_err(|e| format!("cannot open {} for the job's output: {e}", path.display()))
}

impl Mirror {
    pub fn open(spawn: &SpawnFile) -> Result<Mirror, String> {
        let files = &spawn.mirror;
        Ok(Mirror {
            out: open(spawn, &files.stdout)?,
            err: open(spawn, &files.stderr)?,
            merged: open(spawn, &files.log)?,
            timestamps: files.timestamps,
            line_start: [true, true],
        })
    }

    /// Writes what the job wrote. A write that fails (a full disk) is dropped: the job's own log
    /// and the job itself carry on.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], unix_ms: u64) {
        let (which, file) = match stream {
            Stream::Stdout | Stream::Pty => (0, &mut self.out),
            Stream::Stderr => (1, &mut self.err),
        };
        let text = if self.timestamps { stamped(bytes, &mut self.line_start[which], unix_ms) } else { bytes.to_vec() };
        for file in [file.as_mut(), self.merged.as_mut()].into_iter().flatten() {
            let _ = file.write_all(&text);
        }
    }
}

/// `bytes` with the time in front of every line that begins in them.
fn stamped(bytes: &[u8], line_start: &mut bool, unix_ms: u64) -> Vec<u8> {
    let stamp = format!("{} ", crate::clock::rfc3339_ms(unix_ms));
    let mut out = Vec::with_capacity(bytes.len() + stamp.len());
    for &b in bytes {
        if *line_start {
            out.extend_from_slice(stamp.as_bytes());
        }
        out.push(b);
        *line_start = b == b'\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_its_time_once_even_across_reads() {
        let mut start = true;
        let first = stamped(b"ab\nc", &mut start, 0);
        let second = stamped(b"d\n", &mut start, 0);
        let t = "1970-01-01T00:00:00.000Z ";
        assert_eq!(String::from_utf8(first).unwrap(), format!("{t}ab\n{t}c"));
        assert_eq!(String::from_utf8(second).unwrap(), "d\n");
    }
}
