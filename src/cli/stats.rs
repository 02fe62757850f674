use super::Output;
use crate::client::Client;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Job id, unique id prefix (4+ characters), or name.
    pub id: String,
}

/// CPU (measured over 200 ms) and memory of the job's whole process tree, its uptime and its last
/// health check.
pub fn exec(args: Args, client: &mut Client, out: &Output) -> Result<i32> {
    let s = client.stats(args.id)?;
    if out.json {
        out.json_line(&s);
    } else {
        let up = crate::render::short_duration(std::time::Duration::from_secs(s.uptime_secs));
        let health = s.health.map_or_else(String::new, |h| {
            let verdict = if h.healthy { "healthy".to_string() } else { format!("{} failed checks", h.failures) };
            format!("  {verdict} (last check {:.1} ms)", h.latency_ms)
        });
        out.text(&format!("cpu {:.1}%  rss {} MB  up {up}  processes {}{health}", s.cpu_pct, s.rss_mb, s.processes));
    }
    Ok(0)
}
