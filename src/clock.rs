//! Time as the daemon reads it: unix milliseconds, from a clock the reconciler is given, so its
//! tests run under a paused clock they move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Milliseconds since the unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn rfc3339_ms(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

pub fn rfc3339_s(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The system's wall clock: deadlines are stored as wall times so they survive a daemon restart.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Clone, Default)]
pub struct PausedClock(Arc<AtomicU64>);

impl PausedClock {
    pub fn at(ms: u64) -> PausedClock {
        PausedClock(Arc::new(AtomicU64::new(ms)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for PausedClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
