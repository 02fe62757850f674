//! `bgrun-shim <job> <job-dir>`: the supervisor of one run of a job (see `supervisor::shim`). A
//! binary of its own so that each job's supervisor maps only the little code it runs, not the
//! CLI's and the daemon's: its memory is what a job costs beyond itself. The first argument only
//! names the job for `ps`.

fn main() {
    // Started through /proc/self/fd/N (see `launch`), its name would be "N" in top and pgrep.
    let _ = nix::sys::prctl::set_name(c"bgrun-shim");
    let mut args = std::env::args_os().skip(1);
    let code = match (args.next(), args.next(), args.next()) {
        (Some(_job), Some(dir), None) => bgrun::supervisor::shim::main(std::path::Path::new(&dir)),
        _ => {
            bgrun::warn!("bgrun-shim is started by the bgrun daemon: bgrun-shim <job> <job-dir>");
            2
        }
    };
    std::process::exit(code);
}
