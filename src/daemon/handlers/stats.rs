use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::protocol::{HealthView, Response, StatsView};
use crate::reconcile::Query;
use crate::supervisor::procfs;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// CPU is measured over this window: long enough to mean something, short enough to answer fast.
const SAMPLE: Duration = Duration::from_millis(200);

/// CPU and memory of the job's whole process tree, its uptime and its last health check.
pub async fn handle(ctx: &Ctx, key: String) -> Result<Response> {
    let job = ctx.handle.job(key).await?;
    let id = job.id.clone();
    let mut all = measure(ctx, vec![job]).await;
    all.remove(&id).map(Response::Stats).ok_or_else(|| Error::new("the job is not running"))
}

/// The same for every job that has a process, all over one window (the dashboard's live view
/// and metrics ask for all of them every few seconds).
pub async fn all(ctx: &Ctx) -> Result<Response> {
    let jobs = ctx.handle.query(|reply| Query::Running { reply }).await?;
    Ok(Response::AllStats { stats: measure(ctx, jobs).await })
}

/// A running job's process tree.
struct Tree {
    id: String,
    root: i32,
    started_ms: u64,
    cpu_before: u64,
}

impl Tree {
    fn pids(&self) -> Vec<i32> {
        let mut pids = procfs::descendants(self.root);
        pids.push(self.root);
        pids
    }
}

async fn measure(ctx: &Ctx, jobs: Vec<Job>) -> BTreeMap<String, StatsView> {
    let trees: Vec<Tree> = jobs
        .iter()
        .filter_map(|job| {
            let (root, started_ms) = (job.life().pid()?, job.life().started_ms()?);
            let mut tree = Tree { id: job.id.clone(), root, started_ms, cpu_before: 0 };
            tree.cpu_before = procfs::cpu_ticks(&tree.pids());
            Some(tree)
        })
        .collect();
    let t0 = Instant::now();
    tokio::time::sleep(SAMPLE).await;
    let ticks_per_sec = procfs::clock_ticks_per_sec() as f64;
    let now = crate::clock::unix_ms();
    trees
        .into_iter()
        .map(|tree| {
            let pids = tree.pids();
            let ticks = procfs::cpu_ticks(&pids).saturating_sub(tree.cpu_before);
            let cpu_pct = (ticks as f64 / ticks_per_sec) / t0.elapsed().as_secs_f64() * 100.0;
            // A run replaced meanwhile may have left its last check on the board.
            let health = ctx.health.get(&tree.id).filter(|h| h.pid == tree.root).map(|h| HealthView {
                healthy: h.healthy,
                passed: h.passed,
                failures: h.failures,
                latency_ms: (h.latency.as_secs_f64() * 1e4).round() / 10.0,
            });
            let view = StatsView {
                cpu_pct: (cpu_pct * 10.0).round() / 10.0,
                rss_mb: pids.iter().map(|p| procfs::rss_kb(*p)).sum::<u64>() / 1024,
                uptime_secs: now.saturating_sub(tree.started_ms) / 1000,
                processes: pids.len(),
                health,
            };
            (tree.id, view)
        })
        .collect()
}
