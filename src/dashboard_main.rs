//! `bgrun-dashboard`: the web dashboard and HTTP API, a process (and a bgrun job) of its own, so
//! the daemon serves no HTTP and links no HTTP server. `bgrun dashboard` starts it.

fn main() {
    std::process::exit(bgrun::dashboard::main());
}
