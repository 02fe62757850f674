//! The files a shim and the daemon share inside a job's directory. Small JSON files written
//! atomically (temp file + rename), so a reader never sees half of one.

use crate::spec::Pty;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the shim should run: sent on its launch socket (see `handoff`), and kept in `spawn.json`
/// for a run that listens on sockets (see [`prepare_run`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpawnFile {
    /// The job's name (or id), shown by `ps` on the supervisor's command line.
    #[serde(default)]
    pub label: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub grace_ms: u64,
    #[serde(default)]
    pub pty: Option<Pty>,
    /// Offer the job a systemd-style NOTIFY_SOCKET.
    #[serde(default)]
    pub notify: bool,
    /// How a stop asks the job to end.
    #[serde(default)]
    pub stop: crate::spec::Stopping,
    /// The job forks into the background: follow what its first process leaves behind.
    #[serde(default)]
    pub daemonizes: bool,
    /// Where a daemonizing job writes its daemon's pid (relative to `cwd`).
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
    /// Files that get a copy of the job's output.
    #[serde(default)]
    pub mirror: crate::spec::Mirror,
    /// How big the job's log may grow before it is rotated, and how many files are kept.
    #[serde(default)]
    pub log_limits: crate::logs::writer::Limits,
    /// The listening sockets handed to the job (they come with the launch, after the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Listen>,
    /// Fast-forward the job's git checkout before starting it (with `bgrun-deploy`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fetch: bool,
    /// The ports the job declares, freed before it starts (see `free_ports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub free_ports: Vec<u16>,
    /// `--force`: what is in the job's way (a port, a container's name) goes even when it is not
    /// a leftover of the job's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// The container the job runs, supervised as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::spec::ContainerRun>,
}

/// A job's listening sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listen {
    /// Whose sockets they are: the job's id, or `project/job` for a job with replicas, whose
    /// copies share them.
    pub key: String,
    /// The name each socket gets in LISTEN_FDNAMES (the job's name in its file).
    pub name: String,
    /// The addresses, in fd order (3, 4, …).
    pub addresses: Vec<String>,
}

/// The one line a shim prints to the daemon once the job is (or could not be) spawned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Handshake {
    Ok { pid: i32, start_time: u64 },
    Error { error: String },
}

/// The job's process, for a daemon that re-adopts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChildFile {
    pub pid: i32,
    pub start_time: u64,
}

/// How the job ended, written by the shim once no process of the job is left.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitFile {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// True if the daemon asked for the stop.
    pub stopped: bool,
    pub unix_ms: u64,
}

const SHIM_LOCK: &str = "shim.lock";
/// Where supervisors of earlier versions announced themselves (now: in the lock file).
const EARLIER_SHIM: &str = "shim.json";
const SPAWN: &str = "spawn.json";
/// Where supervisors of earlier versions recorded the job's process (now: in the lock file).
const EARLIER_CHILD: &str = "child.json";
/// Where supervisors of earlier versions wrote how the run ended (now: in the lock file).
const EARLIER_EXIT: &str = "exit.json";
const FREED: &str = "freed.json";
/// Where daemons of earlier versions wrote a stop's grace (now: the value of the SIGTERM that
/// asks for the stop, see `launch::request_stop`).
const EARLIER_STOP: &str = "stop";
/// The FIFO that was a job's stdin under supervisors of earlier versions (now: a pipe the
/// supervisor holds, see [`open_stdin`]).
const EARLIER_STDIN: &str = "stdin";
const READY: &str = "ready";
const PTY_SIZE: &str = "pty-size";
const SCREEN: &str = "screen.json";
const NEXT_SPAWN: &str = "next.json";
const NEXT_REQUEST: &str = "next-request.json";
const NEXT_CHILD: &str = "next-child.json";
const NEXT_EXIT: &str = "next-exit.json";

/// A PTY job's screen as its shim's terminal emulator holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScreenFile {
    pub cols: u16,
    pub rows: u16,
    /// The screen as bytes that draw it on a terminal (cursor included).
    pub formatted: String,
    /// Each row's text, trailing blanks trimmed.
    pub lines: Vec<String>,
    /// The log's cursor when the screen was taken: output after it is not on it yet.
    #[serde(alias = "log_len")]
    pub log_cursor: u64,
}

pub fn write_screen(dir: &Path, screen: &ScreenFile) -> io::Result<()> {
    write_json(&dir.join(SCREEN), screen)
}

pub fn read_screen(dir: &Path) -> Option<ScreenFile> {
    read_json(&dir.join(SCREEN)).ok()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    // Created afresh (never through a link planted in its place), then renamed over the target:
    // rename replaces a link itself, not what it points to.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    write_new(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Creates `path` (which must not exist: never through a link planted in its place) holding `bytes`.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_atomic(path, &serde_json::to_vec(value).map_err(io::Error::other)?)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&std::fs::read(path)?).map_err(io::Error::other)
}

/// Prepares a job directory for a new run: no leftovers of the last run, and the spec in
/// `spawn.json` only for a run that listens on sockets, which a later daemon takes back from its
/// shim as that spec says (see `process::watch`). Every other run's spec goes to its shim on the
/// launch socket (see `handoff`): a file is one more inode per run, and allocating inodes is most
/// of what starting a job costs on some file systems.
pub fn prepare_run(dir: &Path, spawn: &SpawnFile) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        // A new directory has no leftovers to look for.
        Ok(()) => {}
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => remove_leftovers(dir)?,
    }
    match spawn.listen {
        // No reader of the spec comes before the shim that is launched once it is written: it
        // needs no temporary file to appear whole.
        Some(_) => write_new(&dir.join(SPAWN), &serde_json::to_vec(spawn).map_err(io::Error::other)?),
        None => Ok(()),
    }
}

/// What an earlier run left in its job directory that must not be taken for the next run's.
fn remove_leftovers(dir: &Path) -> io::Result<()> {
    if !std::fs::symlink_metadata(dir)?.is_dir() {
        return Err(io::Error::other(format!("{} is not a directory", dir.display())));
    }
    for stale in [
        SPAWN,
        EARLIER_SHIM,
        EARLIER_CHILD,
        EARLIER_STDIN,
        EARLIER_EXIT,
        EARLIER_STOP,
        READY,
        SCREEN,
        FREED,
        NEXT_SPAWN,
        NEXT_REQUEST,
        NEXT_CHILD,
        NEXT_EXIT,
    ] {
        match std::fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The shim of a job directory, as it records itself in the directory's lock once it holds it:
/// its own ids, the job's main process once it has started it, its end of the job's stdin, and
/// how the run ended once it has.
/// One small record rewritten in place, rather than a file of its own for each: every file a run
/// creates is an inode to allocate, which is most of what starting a job costs on some file systems.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimFile {
    pub pid: i32,
    pub start_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<ChildFile>,
    /// The shim's descriptor for the write end of the job's stdin (see [`open_stdin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitFile>,
}

/// How long the record is on disk: each write covers the last one whole (JSON ignores the
/// trailing blanks), so the file never holds the end of an older, longer record. Its first write
/// takes the file's only block, so the last (the exit) never needs one on a full disk.
const RECORD_LEN: usize = 256;

/// The descriptor on which a shim receives its job directory's lock: its stdin. A stdio slot is
/// one the daemon can fill without running code between fork and exec, so shims are started with
/// posix_spawn (vfork) rather than fork, whose copy of the daemon's page tables grows with its jobs.
pub const SHIM_LOCK_FD: i32 = 0;

/// Taken by the daemon before it launches a shim, and handed to the shim as its descriptor
/// [`SHIM_LOCK_FD`]: a lock the kernel releases the instant the shim dies, held from before the
/// shim exists, so a daemon can always tell whether a directory has a live shim, even one no
/// record names (the daemon that launched it died first). None if a shim holds it already.
pub fn lock_for_shim(dir: &Path) -> io::Result<Option<std::fs::File>> {
    let Some(lock) = crate::home::Home::try_lock(&dir.join(SHIM_LOCK))? else { return Ok(None) };
    // The last shim's record goes: while the lock is held, the record is the holder's or none.
    lock.set_len(0)?;
    Ok(Some(lock))
}

/// The lock a shim holds for its whole life, and its record in it.
pub struct ShimLock {
    file: std::fs::File,
    record: ShimFile,
}

impl ShimLock {
    /// Records the job's main process (the first one, or the one that took over).
    pub fn set_child(&mut self, child: ChildFile) -> io::Result<()> {
        self.record.child = Some(child);
        write_record(&self.file, &self.record)
    }

    /// Records how the run ended: the shim's last word, read once it is gone.
    pub fn set_exit(&mut self, exit: ExitFile) -> io::Result<()> {
        self.record.exit = Some(exit);
        write_record(&self.file, &self.record)
    }
}

fn write_record(file: &std::fs::File, record: &ShimFile) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
    bytes.resize(bytes.len().max(RECORD_LEN), b' ');
    std::os::unix::fs::FileExt::write_all_at(file, &bytes, 0)
}

/// The record in an open lock file, if one is there. A read that crosses the shim's rewrite
/// of it (a few dozen bytes in place) does not parse, and is made again.
fn read_record(file: &std::fs::File) -> Option<ShimFile> {
    for _ in 0..3 {
        let mut record = [0u8; 2 * RECORD_LEN];
        let n = std::os::unix::fs::FileExt::read_at(file, &mut record, 0).unwrap_or(0);
        if n == 0 {
            return None;
        }
        if let Ok(shim) = serde_json::from_slice::<ShimFile>(&record[..n]) {
            return Some(shim);
        }
    }
    None
}

fn open_lock(dir: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(dir.join(SHIM_LOCK))
}

/// The last record a shim of `dir` wrote, whether it still lives or not (the daemon empties the
/// lock file before it launches the next one).
fn recorded(dir: &Path) -> Option<ShimFile> {
    read_record(&open_lock(dir).ok()?)
}

/// The shim's side: the lock the daemon handed over (checked to be this directory's), moved to a
/// close-on-exec descriptor so the job never holds it, and stdin pointed at /dev/null again; then
/// the shim announces itself in the lock file.
pub fn keep_shim_lock(dir: &Path, me: ShimFile) -> io::Result<ShimLock> {
    use std::os::unix::fs::MetadataExt;
    let expected = std::fs::symlink_metadata(dir.join(SHIM_LOCK))?;
    // SAFETY: only borrowed for fstat and a dup, which fail cleanly (EBADF) if it is not open.
    let handed = unsafe { std::os::fd::BorrowedFd::borrow_raw(SHIM_LOCK_FD) };
    let held = nix::sys::stat::fstat(handed).map_err(io::Error::from)?;
    if held.st_dev != expected.dev() || held.st_ino != expected.ino() {
        return Err(io::Error::other("launched without the job's lock"));
    }
    // The lock belongs to the open file, so the copy holds it as long as the shim lives.
    let file = std::fs::File::from(handed.try_clone_to_owned()?);
    let null = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(&null).map_err(io::Error::from)?;
    write_record(&file, &me)?;
    Ok(ShimLock { file, record: me })
}

/// The shim that holds `dir`'s lock, if one is alive.
pub fn live_shim(dir: &Path) -> Option<ShimFile> {
    let file = open_lock(dir).ok()?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        // Nobody holds it: no shim lives here (the lock is released when dropped).
        Ok(_) => None,
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            // The shim writes its record right after taking the lock; give it a moment. A
            // supervisor of an earlier bgrun, still running through an upgrade, wrote shim.json.
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            loop {
                if let Some(shim) = read_record(&file).or_else(|| read_json::<ShimFile>(&dir.join(EARLIER_SHIM)).ok()) {
                    return Some(shim);
                }
                if std::time::Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Err(_) => None,
    }
}

/// The job's stdin, opened to write without blocking (a job that stopped reading makes a write
/// fail rather than hang). It is a pipe its shim holds both ends of, so the job never sees
/// end-of-file just because the daemon went away; the daemon reaches it through the shim's
/// descriptor in /proc, so no FIFO is made for each run. A shim of an earlier bgrun made one.
pub fn open_stdin(dir: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let open = |path: &Path, flags| {
        std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | flags).open(path)
    };
    let earlier = dir.join(EARLIER_STDIN);
    if std::fs::symlink_metadata(&earlier).is_ok_and(|m| m.file_type().is_fifo()) {
        return open(&earlier, libc::O_NOFOLLOW);
    }
    let closed = || io::Error::new(io::ErrorKind::NotFound, "the job's supervisor holds no stdin for it");
    // The record alone, without the lock's liveness check (and its wait for a record still to
    // come): whether that shim lives is checked below, once its descriptor is open.
    let shim = recorded(dir).ok_or_else(closed)?;
    let file = open(Path::new(&format!("/proc/{}/fd/{}", shim.pid, shim.stdin.ok_or_else(closed)?)), 0)?;
    // Checked once open: the shim may have died, and its pid be another process's, meanwhile.
    if !super::procfs::is_same_process(shim.pid, shim.start_time) || !file.metadata()?.file_type().is_fifo() {
        return Err(closed());
    }
    Ok(file)
}

/// The spec of a run that listens on sockets, as its launch (or its last promotion) left it.
pub fn read_spawn(dir: &Path) -> io::Result<SpawnFile> {
    read_json(&dir.join(SPAWN))
}

/// The job's main process, as its shim (alive or not) last recorded it.
pub fn read_child(dir: &Path) -> Option<ChildFile> {
    recorded(dir).and_then(|shim| shim.child).or_else(|| read_json(&dir.join(EARLIER_CHILD)).ok())
}

/// What the shim stopped to free the job's ports, for the daemon to record (and remove).
pub fn write_freed(dir: &Path, stopped: &[String]) -> io::Result<()> {
    write_json(&dir.join(FREED), &stopped)
}

pub fn take_freed(dir: &Path) -> Vec<String> {
    let found = read_json(&dir.join(FREED)).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join(FREED));
    found
}

/// How the run ended, as its shim recorded it before it exited (a shim of an earlier bgrun
/// wrote a file of its own). None if the shim died without a word.
pub fn read_exit(dir: &Path) -> Option<ExitFile> {
    recorded(dir).and_then(|shim| shim.exit).or_else(|| read_json(&dir.join(EARLIER_EXIT)).ok())
}

/// Written by the shim when the job sends `READY=1` on its notify socket.
pub fn ready_path(dir: &Path) -> PathBuf {
    dir.join(READY)
}

pub fn write_ready(dir: &Path) -> io::Result<()> {
    write_atomic(&ready_path(dir), b"")
}

/// Written by the daemon before it sends SIGUSR1, to resize a PTY job's terminal.
pub fn write_pty_size(dir: &Path, cols: u16, rows: u16) -> io::Result<()> {
    write_atomic(&dir.join(PTY_SIZE), format!("{cols} {rows}").as_bytes())
}

pub fn read_pty_size(dir: &Path) -> Option<(u16, u16)> {
    let text = std::fs::read_to_string(dir.join(PTY_SIZE)).ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse().ok());
    Some((it.next()??, it.next()??))
}

/// Names a new run of a job started beside its current one: the daemon that asked for it (its
/// start time) and that daemon's attempt number for it, which start over with each daemon.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct NextId {
    pub daemon: u64,
    pub attempt: u64,
}

/// What the daemon asks of a shim about a new run of its job started beside the current one (a
/// start-first replace). The latest request is all that counts: requests for one new run come in
/// order (start, then promote or abort), and a start for another new run replaces one still
/// starting.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum NextRequest {
    /// Start the run `next.json` describes beside the current one.
    Start { next: NextId },
    /// The new run is ready: it becomes the job's run, and the old one is stopped.
    Promote { next: NextId },
    /// Stop the new run; the current one goes on.
    Abort { next: NextId },
}

/// The shim's answer to a start: the new run's process and the number its log entries carry
/// (see [`crate::logs::index::Entry::run`]), or why it could not be started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NextChild {
    pub next: NextId,
    #[serde(flatten)]
    pub started: NextStarted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum NextStarted {
    Ok {
        pid: i32,
        start_time: u64,
        run: u8,
    },
    /// The new run's process could not be started (the new version is broken).
    Error {
        error: String,
    },
    /// The shim cannot run two runs of this job at once (see `shim::beside_refused`): the job is
    /// replaced stop-first instead.
    Refused {
        refused: String,
    },
}

/// Asks the shim (by the request file, then SIGUSR1) to do something about a new run.
pub fn write_next_request(dir: &Path, spawn: Option<&SpawnFile>, request: NextRequest) -> io::Result<()> {
    if let Some(spawn) = spawn {
        write_json(&dir.join(NEXT_SPAWN), spawn)?;
    }
    write_json(&dir.join(NEXT_REQUEST), &request)
}

pub fn read_next_request(dir: &Path) -> Option<NextRequest> {
    read_json(&dir.join(NEXT_REQUEST)).ok()
}

pub fn read_next_spawn(dir: &Path) -> io::Result<SpawnFile> {
    read_json(&dir.join(NEXT_SPAWN))
}

/// The new run's spec becomes the job's run's, for a later daemon that takes its sockets back.
pub fn promote_next_spawn(dir: &Path) -> io::Result<()> {
    std::fs::rename(dir.join(NEXT_SPAWN), dir.join(SPAWN))
}

pub fn write_next_child(dir: &Path, child: &NextChild) -> io::Result<()> {
    write_json(&dir.join(NEXT_CHILD), child)
}

/// The shim's answer about new run `next`, once it has given one.
pub fn read_next_child(dir: &Path, next: NextId) -> Option<NextStarted> {
    read_json::<NextChild>(&dir.join(NEXT_CHILD)).ok().filter(|c| c.next == next).map(|c| c.started)
}

/// How a new run ended before it took over (it crashed, or was aborted).
pub fn write_next_exit(dir: &Path, next: NextId, exit: &ExitFile) -> io::Result<()> {
    write_json(&dir.join(NEXT_EXIT), &(next, exit))
}

pub fn read_next_exit(dir: &Path, next: NextId) -> Option<ExitFile> {
    read_json::<(NextId, ExitFile)>(&dir.join(NEXT_EXIT)).ok().filter(|(n, _)| *n == next).map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_record_reads_back_whole_with_the_latest_child_and_the_exit() {
        let dir = std::env::temp_dir().join(format!("bgrun-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = crate::home::Home::try_lock(&dir.join(SHIM_LOCK)).unwrap().unwrap();
        let long = ChildFile { pid: i32::MAX, start_time: u64::MAX };
        let mut held = ShimLock {
            file: lock.try_clone().unwrap(),
            record: ShimFile { pid: 7, start_time: 8, child: None, stdin: Some(5), exit: None },
        };
        // Nothing recorded yet: no process, and no record (a shim of an earlier bgrun wrote files).
        assert_eq!(read_child(&dir), None);
        write_record(&held.file, &held.record).unwrap();
        assert_eq!(read_child(&dir), None);
        held.set_child(long.clone()).unwrap();
        assert_eq!(read_child(&dir), Some(long.clone()));
        // A shorter record over a longer one leaves nothing of the longer one behind.
        let short = ChildFile { pid: 3, start_time: 4 };
        held.set_child(short.clone()).unwrap();
        assert_eq!(read_child(&dir), Some(short.clone()));
        let record = read_record(&open_lock(&dir).unwrap()).unwrap();
        assert_eq!(record, ShimFile { pid: 7, start_time: 8, child: Some(short.clone()), stdin: Some(5), exit: None });
        // The exit, the longest record, still fits in the same place and keeps the rest.
        assert_eq!(read_exit(&dir), None);
        let exit = ExitFile { code: Some(i32::MIN), signal: Some(i32::MAX), stopped: false, unix_ms: u64::MAX };
        held.record.child = Some(long.clone());
        held.set_exit(exit.clone()).unwrap();
        assert_eq!(read_exit(&dir), Some(exit.clone()));
        assert_eq!(read_child(&dir), Some(long));
        assert_eq!(std::fs::metadata(dir.join(SHIM_LOCK)).unwrap().len(), RECORD_LEN as u64);
        // A shim of an earlier bgrun recorded its job's process in a file of its own.
        lock.set_len(0).unwrap();
        write_json(&dir.join(EARLIER_CHILD), &ChildFile { pid: 9, start_time: 10 }).unwrap();
        assert_eq!(read_child(&dir), Some(ChildFile { pid: 9, start_time: 10 }));
        write_json(&dir.join(EARLIER_EXIT), &exit).unwrap();
        assert_eq!(read_exit(&dir), Some(exit));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
