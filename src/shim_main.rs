//! `bgrun-shim <job> <job-dir>`: the supervisor of one run of a job (see `supervisor::shim`). A
//! binary of its own so that each job's supervisor maps only the little code it runs, not the
//! CLI's and the daemon's: its memory is what a job costs beyond itself. The first argument only
//! names the job for `ps`.
//!
//! It enters at C's `main`, skipping Rust's runtime set-up: that reads `/proc/self/maps` to find
//! the main thread's stack and maps a signal stack for stack-overflow messages, which is a tenth
//! of what starting a shim costs and pages of memory it keeps; the shim's stack stays shallow.
#![no_main]

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    bgrun::programs::without_rust_runtime();
    // Started through /proc/self/fd/N (see `launch`), its name would be "N" in top and pgrep.
    let _ = nix::sys::prctl::set_name(c"bgrun-shim");
    // On glibc the arguments are std's without its runtime (captured when the program loads).
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(_job), Some(dir), None) => bgrun::supervisor::shim::main(std::path::Path::new(&dir)),
        _ => {
            bgrun::warn!("bgrun-shim is started by the bgrun daemon: bgrun-shim <job> <job-dir>");
            2
        }
    }
}
