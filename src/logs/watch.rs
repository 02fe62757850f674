//! One inotify watcher for the whole daemon: whoever waits for a job's new output (readiness,
//! `expect`, `tail --follow`) subscribes to the job's directory and is woken on every change in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Subscribers = Arc<Mutex<HashMap<PathBuf, Vec<mpsc::UnboundedSender<()>>>>>;

#[derive(Default)]
pub struct LogWatch {
    subs: Subscribers,
    /// Created on first use, so an idle daemon holds no watcher thread.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
}

/// Wakes up whenever something in the subscribed directory changes.
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<()>,
}

impl Subscription {
    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_none() {
            // The watcher is gone; never wake again rather than spin.
            std::future::pending::<()>().await;
        }
        // Coalesce a burst of events into one wake-up.
        while self.rx.try_recv().is_ok() {}
    }
}

/// Whether an event says something was written, created, removed or renamed. Opening and reading
/// a file are events too (inotify's IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE): counting them would make
/// every reader wake itself up by reading, a loop that burns a core while nothing is written.
pub fn is_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any | EventKind::Other => false,
        // A read may update the access time: that is not a change either.
        EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
    }
}

impl LogWatch {
    pub fn subscribe(&self, dir: &Path) -> notify::Result<Subscription> {
        use notify::Watcher;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if watcher.is_none() {
            let subs = self.subs.clone();
            *watcher = Some(notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if !is_change(&event.kind) {
                    return;
                }
                let mut subs = subs.lock().unwrap_or_else(|e| e.into_inner());
                for path in &event.paths {
                    for key in [Some(path.as_path()), path.parent()].into_iter().flatten() {
                        if let Some(list) = subs.get_mut(key) {
                            list.retain(|tx| tx.send(()).is_ok());
                        }
                    }
                }
            })?);
        }
        // `watch` waits for notify's event thread, whose callback takes `subs`: never hold `subs`
        // across it, or the two wait for each other forever.
        let first = {
            let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
            let list = subs.entry(dir.to_path_buf()).or_default();
            list.retain(|tx| !tx.is_closed());
            list.push(tx);
            list.len() == 1
        };
        if first && let Some(w) = watcher.as_mut() {
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        }
        Ok(Subscription { rx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Subscribing while events stream in must never deadlock with the watcher's own thread.
    #[test]
    fn subscribing_during_a_stream_of_events_does_not_deadlock() {
        let root = std::env::temp_dir().join(format!("bgrun-watch-{}", std::process::id()));
        let busy = root.join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        let watch = LogWatch::default();
        let _busy_sub = watch.subscribe(&busy).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, file) = (stop.clone(), busy.join("log"));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::write(&file, b"x");
                }
            })
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let dirs: Vec<_> = (0..300).map(|i| root.join(format!("d{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let subscriber = std::thread::spawn(move || {
            let subs: Vec<_> = dirs.iter().map(|d| watch.subscribe(d).unwrap()).collect();
            let _ = done_tx.send(subs.len());
        });
        let finished = done_rx.recv_timeout(Duration::from_secs(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert_eq!(finished, Ok(300), "subscribe deadlocked with the watcher thread");
        subscriber.join().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
