//! bgrun as a Rust library: start a web server as a job, wait until it is ready, read its output,
//! stop it. `cargo run --example client [PORT]` (the daemon is started if none runs).

use bgrun::client::Client;
use bgrun::protocol::{KillTarget, TailRequest};

fn main() -> Result<(), bgrun::error::Error> {
    serve_once(&std::env::args().nth(1).unwrap_or_else(|| "8000".into())).map(|_| ())
}

/// Whether the server became ready.
pub fn serve_once(port: &str) -> Result<bool, bgrun::error::Error> {
    let home = bgrun::home::Home::from_env()?; // $BGRUN_HOME, or ~/.bgrun
    let mut client = Client::connect(&home)?; // starts the daemon if none runs
    let args = ["--name", "web", "--ready-when-port", port, "--", "python3", "-m", "http.server", port];
    let job = client.run(bgrun::cli::run::spec(args)?)?;
    let ready = client.wait(job.id.clone(), 10_000)?.ready;
    println!("{} ({}) ready: {ready}", job.display_name(), job.id);
    for line in client.tail(TailRequest::last("web", 5))? {
        println!("{}", line.content);
    }
    client.kill(KillTarget::Job("web".into()), None)?;
    Ok(ready)
}
