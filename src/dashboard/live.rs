//! What the page sees change without asking: one `watch` connection to the daemon feeds the job
//! list to every open page, a sampler adds each running job's CPU and memory every few seconds
//! while a page is open, and a job's log is followed for as long as a page shows it.

use super::api::{ApiError, LogQuery};
use super::{App, blocking};
use crate::client::Client;
use crate::home::Home;
use crate::protocol::{JobView, StatsView};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often CPU and memory are sampled while a page is open.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// How long to wait before connecting again when the daemon went away.
const RECONNECT: Duration = Duration::from_secs(1);

/// The latest job list, and the latest CPU/memory of the running jobs by id.
pub struct Live {
    pub jobs: watch::Receiver<Arc<Vec<JobView>>>,
    pub stats: watch::Receiver<Arc<BTreeMap<String, StatsView>>>,
}

impl Live {
    /// Starts following the daemon (from a thread of its own: the client blocks) and sampling.
    pub fn start(home: Home) -> Live {
        let (jobs_tx, jobs) = watch::channel(Arc::new(Vec::new()));
        let (stats_tx, stats) = watch::channel(Arc::new(BTreeMap::new()));
        let watcher = home.clone();
        std::thread::spawn(move || follow_jobs(&watcher, &jobs_tx));
        tokio::spawn(sample_stats(home, stats_tx));
        Live { jobs, stats }
    }
}

/// Keeps `tx` at the daemon's job list, connecting again whenever the daemon comes back (only an
/// action asked for in the page starts a daemon that was stopped).
fn follow_jobs(home: &Home, tx: &watch::Sender<Arc<Vec<JobView>>>) {
    loop {
        if let Ok(Some(mut client)) = Client::connect_running(home) {
            let _ = client.watch(None, |jobs| tx.send(Arc::new(jobs)).is_ok());
        }
        if tx.is_closed() {
            return;
        }
        std::thread::sleep(RECONNECT);
    }
}

/// While a page is open (someone holds a receiver besides `Live` itself), the CPU and memory of
/// every job with a process, every [`STATS_EVERY`].
async fn sample_stats(home: Home, tx: watch::Sender<Arc<BTreeMap<String, StatsView>>>) {
    let mut tick = tokio::time::interval(STATS_EVERY);
    loop {
        tick.tick().await;
        if tx.receiver_count() <= 1 {
            continue;
        }
        let home = home.clone();
        let sampled =
            tokio::task::spawn_blocking(move || Client::connect_running(&home)?.map(|mut c| c.stats_all()).transpose())
                .await;
        if let Ok(Ok(Some(stats))) = sampled {
            tx.send_replace(Arc::new(stats));
        }
    }
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default().event(name).data(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}

/// `GET /api/v1/events`: a `jobs` event with the whole list now and whenever it changes, and a
/// `stats` event (CPU and memory by job id) every few seconds.
pub async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (mut jobs, mut stats) = (app.live.jobs.clone(), app.live.stats.clone());
    jobs.mark_changed();
    stats.mark_changed();
    let stream = futures_util::stream::unfold((jobs, stats), |(mut jobs, mut stats)| async move {
        let event = tokio::select! {
            changed = jobs.changed() => {
                changed.ok()?;
                let list = jobs.borrow_and_update().clone();
                json_event("jobs", &*list)
            }
            changed = stats.changed() => {
                changed.ok()?;
                let now = stats.borrow_and_update().clone();
                json_event("stats", &*now)
            }
        };
        Some((Ok(event), (jobs, stats)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Shuts the daemon connection of a log follow when the page stops listening, so the daemon
/// and the thread reading it stop too.
struct Hangup(std::os::unix::net::UnixStream);

impl Drop for Hangup {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// `GET /api/v1/jobs/{job}/logs/follow`: the last lines, then each new batch as it is written,
/// as `lines` events; an `end` event with the job's final state when it is finished.
pub async fn follow_logs(
    State(app): State<Arc<App>>,
    Path(job): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // An unknown job is a 404, not a stream that ends at once.
    let home = app.home.clone();
    let (mut client, id) = blocking(move || {
        let mut client = Client::connect(&home)?;
        let id = client.status(job)?.id;
        Ok((client, id))
    })
    .await?;
    let request = q.request(id);
    let hangup =
        Hangup(client.stream().try_clone().map_err(|e| crate::error::Error::context("cannot follow the log", e))?);
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    std::thread::spawn(move || {
        let end = client.follow(request, |lines| tx.blocking_send(json_event("lines", &lines)).is_ok());
        let last = match end {
            Ok(Some(state)) => json_event("end", &serde_json::json!({ "state": state })),
            Ok(None) => return,
            Err(e) => json_event("error", &serde_json::json!({ "error": e.message })),
        };
        let _ = tx.blocking_send(last);
    });
    let stream = futures_util::stream::unfold((rx, hangup), |(mut rx, hangup)| async move {
        let event = rx.recv().await?;
        Some((Ok(event), (rx, hangup)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
