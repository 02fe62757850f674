use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::protocol::{Response, StatsView};
use crate::supervisor::procfs;
use std::time::{Duration, Instant};

/// CPU is measured over this window: long enough to mean something, short enough to answer fast.
const SAMPLE: Duration = Duration::from_millis(200);

/// CPU and memory of the job's whole process tree, and its uptime.
pub async fn handle(ctx: &Ctx, key: String) -> Result<Response> {
    let job = ctx.handle.job(key).await?;
    let (Some(pid), Some(started_ms)) = (job.life().pid(), job.life().started_ms()) else {
        return Err(Error::new("the job is not running"));
    };
    let tree = || {
        let mut pids = procfs::descendants(pid);
        pids.push(pid);
        pids
    };
    let before = procfs::cpu_ticks(&tree());
    let t0 = Instant::now();
    tokio::time::sleep(SAMPLE).await;
    let pids = tree();
    let after = procfs::cpu_ticks(&pids);
    let ticks_per_sec = procfs::clock_ticks_per_sec() as f64;
    let cpu_pct = (after.saturating_sub(before) as f64 / ticks_per_sec) / t0.elapsed().as_secs_f64() * 100.0;
    let now = crate::clock::unix_ms();
    Ok(Response::Stats(StatsView {
        cpu_pct: (cpu_pct * 10.0).round() / 10.0,
        rss_mb: pids.iter().map(|p| procfs::rss_kb(*p)).sum::<u64>() / 1024,
        uptime_secs: now.saturating_sub(started_ms) / 1000,
        processes: pids.len(),
    }))
}
