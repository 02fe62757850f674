//! Test harness: a private BGRUN_HOME per test, the real binary, one poll-until-deadline helper,
//! and a watchdog that kills everything the test started if it hangs.
#![allow(dead_code)]

pub mod http;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bgrun");

pub struct Bgrun {
    pub home: PathBuf,
    watchdog: Option<mpsc::Sender<()>>,
}

impl Bgrun {
    /// A fresh home; the watchdog fails the test (and cleans up) after `limit`.
    pub fn new(limit: Duration) -> Bgrun {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let home = std::env::temp_dir().join(format!("bgt-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let watched = home.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: test exceeded {limit:?}; killing its daemon and jobs");
                kill_everything(&watched);
                std::process::abort();
            }
        });
        Bgrun { home, watchdog: Some(tx) }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("BGRUN_HOME", &self.home).env_remove("NO_COLOR").stdin(Stdio::null());
        c
    }

    /// Runs bgrun with piped output (so JSON) and returns its output, whatever the exit code.
    pub fn run_raw(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run bgrun")
    }

    /// Runs bgrun, requires success, parses stdout as one JSON value.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run_raw(args);
        assert!(out.status.success(), "bgrun {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("bgrun {args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Runs bgrun, requires failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run_raw(args);
        assert!(!out.status.success(), "bgrun {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn status(&self, job: &str) -> Value {
        self.json(&["status", job])
    }

    pub fn state(&self, job: &str) -> String {
        self.status(job)["state"].as_str().unwrap().to_string()
    }

    pub fn pid(&self, job: &str) -> i32 {
        self.status(job)["pid"].as_i64().expect("job has a pid") as i32
    }

    pub fn tail_text(&self, job: &str, n: usize) -> Vec<String> {
        let v = self.json(&["tail", job, "--lines", &n.to_string()]);
        v["lines"].as_array().unwrap().iter().map(|l| l["content"].as_str().unwrap().to_string()).collect()
    }

    /// Runs `bgrun ARGS` with a terminal as its stdin and stdout (through `script`), in `dir`,
    /// typing `input`; returns what the terminal showed. Colours are off (NO_COLOR); the terminal
    /// is 100 columns wide.
    pub fn on_terminal(&self, args: &str, dir: Option<&Path>, input: &[u8]) -> String {
        use std::io::Write;
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("stty cols 100 rows 40 2>/dev/null; {BIN} {args}"), "/dev/null"])
            .env("BGRUN_HOME", &self.home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().expect("`script` (bsdutils) is needed for this test; .ci/run installs it");
        child.stdin.take().unwrap().write_all(input).unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.home.join("daemon.lock")).ok()?.trim().parse().ok()
    }
}

impl Drop for Bgrun {
    fn drop(&mut self) {
        if let Some(tx) = self.watchdog.take() {
            let _ = tx.send(());
        }
        kill_everything(&self.home);
        let _ = std::fs::remove_dir_all(&self.home);
        // Anything that was between fork and exec during the first sweep is caught here.
        kill_everything(&self.home);
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Kills, by pid, every process started for `home`: the daemon and the jobs carry
/// `BGRUN_HOME=<home>` in their environment (jobs inherit the caller's, unless started with an
/// empty one); the job supervisors are `bgrun-shim <job> <home>/jobs/<id>`, and every job is one of
/// their descendants. Waits until none is left, so nothing can recreate the directory after the
/// test removes it.
pub fn kill_everything(home: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ours = processes_of(home);
        if ours.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in ours {
            signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn processes_of(home: &Path) -> Vec<i32> {
    let needle = format!("BGRUN_HOME={}", home.display());
    let me = std::process::id() as i32;
    let live: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me && alive(*pid))
        .collect();
    let shims = shims_of(home);
    let mut ours: Vec<i32> = live
        .into_iter()
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
        })
        .collect();
    for shim in shims {
        ours.push(shim);
        ours.extend(descendants(shim));
    }
    ours.sort_unstable();
    ours.dedup();
    ours
}

/// The live job supervisors of `home`: `bgrun-shim <job> <home>/jobs/<id>`.
pub fn shims_of(home: &Path) -> Vec<i32> {
    let jobs = home.join("jobs").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            argv[0] == b"bgrun-shim" && argv.get(2).is_some_and(|dir| dir.starts_with(jobs.as_bytes()))
        })
        .collect()
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid and signal number.
    unsafe { libc::kill(pid, sig) };
}

/// Kills the daemon with SIGKILL and waits until it is gone (a command sent meanwhile would
/// reach the dying daemon and lose it). Its first thread dies first; its socket closes only once
/// the last has finished (one in the middle of a disk write may take a while), and until then a
/// connection is accepted, then reset.
pub fn kill_daemon(b: &Bgrun) {
    let daemon = b.daemon_pid().expect("a daemon");
    signal(daemon, libc::SIGKILL);
    wait_until("the daemon to die", SECS(10), || (!alive(daemon)).then_some(()));
    let socket = b.home.join("daemon.sock");
    wait_until("the daemon's socket to close", SECS(10), || {
        std::os::unix::net::UnixStream::connect(&socket).is_err().then_some(())
    });
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 2..].chars().next()) != Some('Z'),
        Err(_) => false,
    }
}

pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(i) = stat.rfind(')')
            && let Some(ppid) = stat[i + 2..].split_whitespace().nth(1).and_then(|s| s.parse::<i32>().ok())
        {
            parent.insert(pid, ppid);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// The one way tests wait: poll `check` until it returns Some, or fail naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A TCP port nothing uses right now, below the ephemeral range (32768 and up): the clients of a
/// load test take thousands of ephemeral ports, and one of those would make a port the kernel
/// handed out free unusable for a server a moment later.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + ((std::process::id().wrapping_mul(7919) + n.wrapping_mul(104_729)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One HTTP/1.0 request to a server on this machine: the body of its answer.
pub fn request(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(SECS(10)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer.split("\r\n\r\n").nth(1).map(String::from).ok_or_else(|| std::io::Error::other("no body"))
}

/// Clients sending requests back to back to a server on this machine until finished, counting
/// the answers and the failures.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// How many times each answer came (the servers of the tests answer with their version).
    answers: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, clients: usize) -> Load {
        use std::sync::atomic::Ordering;
        let (stop, ok, failed, answers) = Default::default();
        let mut load = Load { stop, ok, failed, answers, threads: Vec::new() };
        for _ in 0..clients {
            let (stop, ok, failed) = (load.stop.clone(), load.ok.clone(), load.failed.clone());
            let answers = load.answers.clone();
            load.threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match request(port) {
                        Ok(body) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            *answers.lock().unwrap().entry(body).or_default() += 1;
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        load
    }

    /// The answers counted since the last call.
    pub fn take_answers(&self) -> std::collections::BTreeMap<String, usize> {
        std::mem::take(&mut *self.answers.lock().unwrap())
    }

    /// Stops the clients: (answered, failed).
    pub fn finish(self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}
