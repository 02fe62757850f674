//! The log pipeline from the built binary: output stored byte for byte, rotation without loss
//! or repetition, and answers of any size streamed whole.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

#[allow(non_snake_case)]
fn SECS(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn job_dir(b: &Bgrun, job: &str) -> std::path::PathBuf {
    b.home.join("jobs").join(b.status(job)["id"].as_str().unwrap())
}

fn ended(b: &Bgrun, job: &str) {
    wait_until(&format!("{job} to end"), SECS(30), || (b.state(job) == "exited").then_some(()));
}

fn numbers(lines: &Value) -> Vec<u64> {
    lines["lines"].as_array().unwrap().iter().map(|l| l["content"].as_str().unwrap().parse().unwrap()).collect()
}

#[test]
fn output_is_stored_byte_for_byte() {
    let b = Bgrun::new(SECS(60));
    // Bytes that are not text, a carriage return, an escape sequence and no final newline.
    let script = r"printf 'a\tb\r\n\377\033[31mred\033[0m\nno newline'";
    b.json(&["run", "--name", "raw", "sh", "-c", script]);
    ended(&b, "raw");
    let stored = std::fs::read(job_dir(&b, "raw").join("output.log")).unwrap();
    assert_eq!(stored, b"a\tb\r\n\xff\x1b[31mred\x1b[0m\nno newline");
    let lines: Vec<String> = b.json(&["tail", "raw"])["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines, vec!["a\tb\r", "\u{fffd}\x1b[31mred\x1b[0m", "no newline"]);
}

/// A job writes 200,000 numbered lines (1.3 MB) as fast as it can into a log rotated every
/// megabyte. Kept whole (10 files), every line is there exactly once, in order, for `tail` of all of
/// them (streamed in many frames), for `diff`, and for a follower that read while it was written;
/// kept short (2 files, 4 MB written), the retained lines are the newest, still each exactly once.
#[test]
fn rotation_loses_and_repeats_no_line() {
    let b = Bgrun::new(SECS(120));
    let want: Vec<u64> = (1..=200_000).collect();
    b.json(&["run", "--name", "kept", "--log-max-size", "1", "--log-max-files", "10", "seq", "1", "200000"]);
    // However far the job got: the follower's first lines and what it follows meet exactly.
    let mut follower =
        b.cmd(&["tail", "kept", "--follow", "--lines", "1000000"]).stdout(Stdio::piped()).spawn().unwrap();
    b.json(&["run", "--name", "short", "--log-max-size", "1", "--log-max-files", "2", "seq", "1", "600000"]);
    ended(&b, "kept");
    ended(&b, "short");

    let followed: Vec<u64> = BufReader::new(follower.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()["content"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(follower.wait().unwrap().success());
    assert!(followed == want, "the follower lost or repeated a line");

    let dir = job_dir(&b, "kept");
    assert!(dir.join("output.log.1").exists(), "the log was rotated");
    assert!(numbers(&b.json(&["tail", "kept", "--lines", "1000000"])) == want, "tail lost or repeated a line");
    assert!(numbers(&b.json(&["diff", "kept"])) == want, "diff lost or repeated a line");
    assert!(numbers(&b.json(&["diff", "kept"])).is_empty(), "the cursor moved past them all");

    let dir = job_dir(&b, "short");
    assert!(dir.join("output.log.1").exists() && !dir.join("output.log.2").exists(), "at most 2 files");
    let kept = numbers(&b.json(&["tail", "short", "--lines", "1000000"]));
    // 4 MB written: of 2 files of 1 MB, between 1 and 2 MB are kept.
    assert!(kept.len() > 100_000 && kept.len() < 400_000, "older segments went: {}", kept.len());
    let newest: Vec<u64> = (600_001 - kept.len() as u64..=600_000).collect();
    assert!(kept == newest, "not the newest lines, each once, in order: from {:?} to {:?}", kept.first(), kept.last());
    let tail = numbers(&b.json(&["tail", "short", "--lines", "3"]));
    assert_eq!(tail, vec![599_998, 599_999, 600_000]);
}

/// The daemon starts each job's supervisor from beside its own binary: `bgrun` and `bgrun-daemon`
/// copied without `bgrun-shim` refuse to run a job with one clear error, and leave no job behind.
#[test]
fn a_missing_supervisor_binary_is_a_clear_error() {
    let b = Bgrun::new(SECS(60));
    let alone = b.home.join("bin");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(BIN, alone.join("bgrun")).unwrap();
    let daemon = std::path::Path::new(BIN).with_file_name("bgrun-daemon");
    std::fs::copy(daemon, alone.join("bgrun-daemon")).unwrap();
    // Another test's child forked while the copy was open for writing holds it open until it
    // execs: running the copy meanwhile fails with ETXTBSY, for a moment.
    let out = wait_until("the copy to be executable", SECS(10), || {
        match std::process::Command::new(alone.join("bgrun"))
            .args(["run", "--name", "x", "sleep", "60"])
            .env("BGRUN_HOME", b.home.join("state"))
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => None,
            other => Some(other.unwrap()),
        }
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bgrun-shim") && err.contains("cargo install"), "{err}");
    let list = std::process::Command::new(alone.join("bgrun"))
        .args(["list", "--json"])
        .env("BGRUN_HOME", b.home.join("state"))
        .output()
        .unwrap();
    assert!(list.stdout.is_empty(), "no job was left: {}", String::from_utf8_lossy(&list.stdout));
    kill_everything(&b.home.join("state"));
}
