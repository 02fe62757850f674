//! Freeing a job's ports before it starts (the shim's side, so the wait never blocks the daemon).
//! A port the job declares (readiness, health) that something still listens on is held either by
//! a leftover of the job's own earlier run (a process carrying its id), which is always stopped,
//! or by any other process of the same user, stopped only with `--force`. Processes of other users
//! are never touched.

use super::procfs;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the holders get to let go of the ports after SIGTERM, before SIGKILL.
const PATIENCE: Duration = Duration::from_secs(5);

/// Stops what holds `ports`, as described above; returns what it stopped, for the job's events
/// ("pid 4242 (python3) held port 8080").
pub fn free(ports: &[u16], job_id: &str, anyone: bool) -> Vec<String> {
    let listening: HashMap<u64, u16> =
        procfs::listening_sockets().into_iter().filter(|(_, port)| ports.contains(port)).collect();
    if listening.is_empty() {
        return Vec::new();
    }
    let me = std::process::id() as i32;
    let uid = nix::unistd::getuid().as_raw();
    let marker = format!("{}={job_id}", procfs::JOB_ID_ENV);
    let mut stopped = Vec::new();
    let mut pids = Vec::new();
    for pid in all_pids().into_iter().filter(|p| *p != me && owner(*p) == Some(uid)) {
        let held = procfs::ports_of(&[pid], &listening);
        if held.is_empty() || !(anyone || has_env(pid, &marker)) {
            continue;
        }
        let held: Vec<String> = held.iter().map(u16::to_string).collect();
        stopped.push(format!("pid {pid} ({}) held port {}", comm(pid), held.join(", ")));
        pids.push(pid);
    }
    signal_all(&pids, Signal::SIGTERM);
    let deadline = Instant::now() + PATIENCE;
    let busy = || ports.iter().any(|p| procfs::is_listening(*p)) && pids.iter().any(|p| alive(*p));
    while busy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pids.iter().any(|p| alive(*p)) {
        signal_all(&pids, Signal::SIGKILL);
    }
    stopped
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect()
}

fn owner(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

fn has_env(pid: i32, var: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == var.as_bytes()))
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok() && !procfs::is_zombie(pid)
}

fn signal_all(pids: &[i32], signal: Signal) {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), signal);
    }
}
