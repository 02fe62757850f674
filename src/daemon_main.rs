//! `bgrun-daemon`: the daemon, which the CLI starts (or `bgrun daemon run`, or the startup unit).
//! A binary of its own so that it maps none of the CLI's code: its resident memory is what it
//! runs.

fn main() {
    std::process::exit(match bgrun::home::Home::from_env().and_then(bgrun::daemon::main) {
        Ok(()) => 0,
        Err(e) => {
            bgrun::warn!("bgrun daemon: {e}");
            1
        }
    });
}
