//! `bgrun-daemon`: the daemon, which the CLI starts (or `bgrun daemon run`, or the startup unit).
//! A binary of its own so that it maps none of the CLI's code: its resident memory is what it
//! runs.
//!
//! It enters at C's `main`, as the shim does (see [`bgrun::programs::without_rust_runtime`]):
//! Rust's runtime set-up ran stdio's `fopen` and `sscanf` on `/proc/self/maps`, three 64 KB
//! stretches of code the kernel maps in and the idle daemon never runs again.
#![no_main]

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    bgrun::programs::without_rust_runtime();
    match bgrun::home::Home::from_env().and_then(bgrun::daemon::main) {
        Ok(()) => 0,
        Err(e) => {
            bgrun::warn!("bgrun daemon: {e}");
            1
        }
    }
}
