//! The library's example (`examples/client.rs`, shown in the README) run as a program using bgrun
//! would run it: against a real daemon, which it starts itself.

mod common;

#[allow(dead_code)]
#[path = "../examples/client.rs"]
mod example;

use common::*;

#[test]
fn the_readme_example_starts_waits_reads_and_stops_a_job() {
    let b = Bgrun::new(SECS(60));
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: this file's only test sets them before it starts any thread that reads the environment
    // (the watchdog reads none). The library finds `bgrun` on the PATH, as a program using it would.
    unsafe {
        std::env::set_var("BGRUN_HOME", &b.home);
        std::env::set_var("PATH", path);
    }
    let port = free_port().to_string();
    assert!(example::serve_once(&port).expect("the example runs"), "the server never became ready");
    let status = b.status("web");
    assert_eq!(status["state"], "killed");
    assert_eq!(status["spec"]["cmd"][3], port.as_str());
    assert!(status["events"].as_array().unwrap().iter().any(|e| e["kind"] == "ready"), "{status}");
}

#[test]
fn the_readme_shows_the_example_as_it_is() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/client.rs")).unwrap();
    let body = &example[example.find("pub fn serve_once").unwrap()..];
    assert!(readme.contains(body.trim_end()), "the README's library example differs from examples/client.rs");
}
