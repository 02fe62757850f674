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

impl LogWatch {
    pub fn subscribe(&self, dir: &Path) -> notify::Result<Subscription> {
        use notify::Watcher;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if watcher.is_none() {
            let subs = self.subs.clone();
            *watcher = Some(notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
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
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let list = subs.entry(dir.to_path_buf()).or_default();
        list.retain(|tx| !tx.is_closed());
        if list.is_empty()
            && let Some(w) = watcher.as_mut()
        {
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        }
        list.push(tx);
        Ok(Subscription { rx })
    }
}
