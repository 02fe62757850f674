//! Probes that watch a running job from the daemon: readiness, health and memory. Each runs as
//! its own task for one run of a job and reports back as an event; none of them touches the job.

use super::ProbeContext;
use super::procfs;
use crate::logs::reader;
use crate::logs::watch::LogWatch;
use crate::spec::{Health, Readiness};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often conditions without an event source (ports, URLs, files) are checked.
const POLL: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a readiness command runs while it fails, and how long one run may take.
const EXEC_POLL: Duration = Duration::from_millis(500);
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a check command (through `sh -c`, in the job's cwd and environment): Ok when it exits 0.
/// One that takes longer than `timeout` is killed and fails.
async fn run_check(command: &str, at: &ProbeContext, timeout: Duration) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(&at.env)
        .current_dir(&at.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{command}` {}", crate::state::describe_exit(status.code(), None))),
        Ok(Err(e)) => Err(format!("cannot run `{command}`: {e}")),
        Err(_) => Err(format!("`{command}` did not finish within {}", humantime::format_duration(timeout))),
    }
}

/// The one HTTP client the daemon uses, for readiness and health URLs.
pub fn http_client() -> reqwest::Client {
    // The TLS provider for https URLs; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(CONNECT_TIMEOUT).build().unwrap_or_default()
}

/// Resolves once every readiness check passes. Log checks read the run's output from `offset` as
/// it is written (only run `run`'s lines, when given: a new run starts beside the old one, whose
/// lines must not make it ready); the rest are polled.
pub async fn readiness(
    watch: Arc<LogWatch>,
    http: reqwest::Client,
    dir: PathBuf,
    at: ProbeContext,
    ready: Readiness,
    (mut offset, run): (u64, Option<u8>),
) {
    let cwd = &at.cwd;
    let mut substrings = ready.log_contains.clone();
    let mut regexes: Vec<regex::Regex> = ready.log_regex.iter().filter_map(|r| regex::Regex::new(r).ok()).collect();
    let mut port = ready.port;
    let mut url = ready.url.clone();
    let mut exec = ready.exec.clone();
    let mut next_exec = tokio::time::Instant::now();
    let mut file = ready.file.as_ref().map(|f| cwd.join(f));
    let mut notified = ready.notify.then(|| super::files::ready_path(&dir));
    let mut joiner = reader::Joiner::default();
    let mut sub = watch.subscribe(&dir).ok();
    loop {
        if (!substrings.is_empty() || !regexes.is_empty())
            && let Ok((lines, next)) = reader::read_from(&dir, offset)
        {
            offset = next;
            for line in lines.into_iter().filter(|l| run.is_none_or(|r| l.run == r)) {
                // A line without its end yet (a prompt: `Password: `) is matched as far as it
                // goes, once the shim has flushed it; its end then comes joined to it.
                let text = joiner.join(line).text();
                substrings.retain(|s| !text.contains(s.as_str()));
                regexes.retain(|r| !r.is_match(&text));
            }
        }
        if port.is_some_and(procfs::is_listening) {
            port = None;
        }
        if let Some(u) = &url
            && get_ok(&http, u).await.is_ok()
        {
            url = None;
        }
        if file.as_ref().is_some_and(|f| f.exists()) {
            file = None;
        }
        // A command costs a process: it runs every EXEC_POLL at most.
        if let Some(command) = &exec
            && tokio::time::Instant::now() >= next_exec
        {
            if run_check(command, &at, EXEC_TIMEOUT).await.is_ok() {
                exec = None;
            }
            next_exec = tokio::time::Instant::now() + EXEC_POLL;
        }
        // The shim writes this file into the job's directory: the watch wakes us for it.
        if notified.as_ref().is_some_and(|f| f.exists()) {
            notified = None;
        }
        if substrings.is_empty()
            && regexes.is_empty()
            && port.is_none()
            && url.is_none()
            && file.is_none()
            && exec.is_none()
            && notified.is_none()
        {
            return;
        }
        let polled = port.is_some() || url.is_some() || file.is_some() || exec.is_some();
        match (&mut sub, polled) {
            (Some(s), false) => s.changed().await,
            (Some(s), true) => {
                tokio::select! {
                    _ = s.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            (None, _) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A health check of a port: something listens on it (by the kernel's tables, so a port nobody
/// listens on is never connected to) and accepts a connection that is not to ourselves.
async fn port_answers(port: u16) -> Result<(), String> {
    if !procfs::is_listening(port) {
        return Err(format!("nothing listens on port {port}"));
    }
    let mut last = format!("port {port} refused the connection");
    for addr in [std::net::SocketAddr::from(([127, 0, 0, 1], port)), (std::net::Ipv6Addr::LOCALHOST, port).into()] {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) if is_self_connection(&stream) => last = format!("port {port}: connected to itself"),
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = format!("port {port}: {e}"),
            Err(_) => last = format!("port {port} did not answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    Err(last)
}

/// A TCP connection whose two ends are one socket (Linux's simultaneous open of a local port
/// nobody listens on): not a server answering.
fn is_self_connection(stream: &tokio::net::TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(local), Ok(peer)) if local == peer)
}

async fn get_ok(http: &reqwest::Client, url: &str) -> Result<(), String> {
    let Ok(parsed) = reqwest::Url::parse(url) else { return Err(format!("{url} is not a URL")) };
    let (host, port) = (parsed.host_str().unwrap_or_default(), parsed.port_or_known_default().unwrap_or(80));
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    // A local server is only asked once it listens: never connect to a local port nobody holds.
    if local && !procfs::is_listening(port) {
        return Err(format!("{url}: nothing listens on port {port}"));
    }
    // `localhost` means either loopback, whatever the resolver says: the server may listen on
    // one of them only. The Host header stays what the URL says.
    let candidates: Vec<reqwest::Url> = if host == "localhost" {
        ["127.0.0.1", "[::1]"]
            .iter()
            .filter_map(|ip| {
                let mut u = parsed.clone();
                u.set_host(Some(ip)).ok().map(|()| u)
            })
            .collect()
    } else {
        vec![parsed.clone()]
    };
    let authority = format!("{host}:{port}");
    let mut last = format!("{url}: no address to try");
    for candidate in candidates {
        match http.get(candidate).header(reqwest::header::HOST, &authority).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("{url} answered {}", resp.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// The last health check of each job that has one: what `stats` (and the dashboard's metrics)
/// report. Written by the probes, read by request handlers.
#[derive(Default)]
pub struct HealthBoard(std::sync::Mutex<std::collections::HashMap<String, HealthSample>>);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSample {
    /// The run it is about (its first process).
    pub pid: i32,
    /// The last check passed (or failed only while the start period lasts).
    pub healthy: bool,
    /// The last check itself passed.
    pub passed: bool,
    /// Failed checks in a row.
    pub failures: u32,
    /// How long the last check took.
    pub latency: Duration,
}

impl HealthBoard {
    pub fn get(&self, id: &str) -> Option<HealthSample> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied()
    }

    fn set(&self, id: &str, sample: Option<HealthSample>) {
        let mut board = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match sample {
            Some(sample) => board.insert(id.to_string(), sample),
            None => board.remove(id),
        };
    }
}

/// Probes a ready job every interval; resolves with a description of the last failure once
/// `threshold` probes in a row have failed, or never while the job stays healthy.
/// Each check's outcome is posted on `board` under `id` while the probe runs.
pub async fn health(
    http: reqwest::Client,
    health: Health,
    at: ProbeContext,
    (pid, start): (i32, u64),
    (board, id): (std::sync::Arc<HealthBoard>, String),
) -> Option<(u32, String)> {
    let verdict = health_checks(http, health, at, (pid, start), |sample| board.set(&id, Some(sample))).await;
    board.set(&id, None);
    verdict
}

async fn health_checks(
    http: reqwest::Client,
    health: Health,
    at: ProbeContext,
    (pid, start): (i32, u64),
    post: impl Fn(HealthSample),
) -> Option<(u32, String)> {
    let mut failures = 0;
    let counted_from = tokio::time::Instant::now() + health.start_period;
    loop {
        tokio::time::sleep(health.interval).await;
        if !procfs::is_same_process(pid, start) {
            return None;
        }
        let began = tokio::time::Instant::now();
        let check = async {
            match (&health.exec, &health.url, health.port) {
                (Some(command), ..) => run_check(command, &at, health.timeout).await,
                (None, Some(url), _) => get_ok(&http, url).await,
                (None, None, Some(port)) => port_answers(port).await,
                (None, None, None) => Ok(()),
            }
        };
        let result = match tokio::time::timeout(health.timeout, check).await {
            Ok(result) => result,
            Err(_) => Err(format!("the check did not finish within {}", humantime::format_duration(health.timeout))),
        };
        let latency = began.elapsed();
        let passed = result.is_ok();
        match result {
            Ok(()) => failures = 0,
            // A slow server is still booting: its failures do not count yet.
            Err(_) if tokio::time::Instant::now() < counted_from => {}
            Err(e) => {
                failures += 1;
                if failures >= health.threshold {
                    return Some((failures, e));
                }
            }
        }
        post(HealthSample { pid, healthy: failures == 0, passed, failures, latency });
    }
}

/// Samples the memory of the job's whole process tree every second; resolves with the RSS once
/// it is over `limit_mb`, or never while under it.
pub async fn memory(pid: i32, start: u64, limit_mb: u64) -> Option<u64> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !procfs::is_same_process(pid, start) {
            return None;
        }
        let rss = procfs::tree_rss_kb(pid) / 1024;
        if rss > limit_mb {
            return Some(rss);
        }
    }
}

/// The log's end, where a new run's output will start.
pub fn log_end(dir: &Path) -> u64 {
    reader::end(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An https URL is checked over TLS (with no TLS provider installed, making the client would
    /// have panicked): a plain HTTP server behind it passes as http and fails as https.
    #[tokio::test]
    async fn an_https_url_is_checked_over_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                // The request (or a TLS hello) is read before the answer, or closing would reset.
                let _ = stream.read(&mut [0; 4096]).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let http = http_client();
        assert_eq!(get_ok(&http, &format!("http://127.0.0.1:{port}/")).await, Ok(()));
        let refused = get_ok(&http, &format!("https://127.0.0.1:{port}/")).await.unwrap_err();
        assert!(refused.starts_with(&format!("https://127.0.0.1:{port}/: ")), "{refused}");
    }

    #[tokio::test]
    async fn a_connection_to_itself_is_recognised() {
        // Bind a port, do not listen, connect to it: Linux connects the socket to itself.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let stream = socket.connect(addr).await.unwrap();
        assert!(is_self_connection(&stream));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        assert!(!is_self_connection(&other));
        assert_eq!(port_answers(listener.local_addr().unwrap().port()).await, Ok(()));
        drop(listener);
        assert!(port_answers(addr.port()).await.unwrap_err().contains("nothing listens"));
    }
}
