//! The daemon: exactly one per `BGRUN_HOME` (an exclusive lock held for its whole life), a control
//! socket only its owner can use, and one handler per request kind.

mod conn;
mod handlers;
mod lock;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::reconcile::{Edit, Handle, Reconciler};
use crate::store::Store;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

/// What every handler can reach.
pub struct Ctx {
    pub handle: Handle,
    pub home: Home,
    pub started: Instant,
    pub shutdown: Notify,
    pub logs: Arc<crate::logs::watch::LogWatch>,
    pub ports: crate::reconcile::views::PortCache,
}

/// Environment variable naming the fd on which the daemon reports that it is listening.
pub const READY_FD_ENV: &str = "BGRUN_READY_FD";

pub fn main(home: Home) -> Result<()> {
    let Some(_lock) = lock::acquire(&home.lock())? else {
        // Another daemon owns this home; the caller will talk to it.
        return Ok(());
    };
    let store = Store::open(&home.database())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::context("cannot start the async runtime", e))?;
    rt.block_on(serve(home, store))
}

async fn serve(home: Home, store: Store) -> Result<()> {
    let logs = Arc::new(crate::logs::watch::LogWatch::default());
    let (rec, handle, rx) = Reconciler::new(home.clone(), store, logs.clone())?;
    let socket = home.socket();
    // We hold the lock, so a socket file here is a leftover of a daemon that died.
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).map_err(|e| Error::context(format!("cannot listen on {}", socket.display()), e))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::context("cannot secure the control socket", e))?;
    report_ready();

    let reconciler = tokio::spawn(rec.run(rx));
    let ctx = Arc::new(Ctx {
        handle: handle.clone(),
        home,
        started: Instant::now(),
        shutdown: Notify::new(),
        logs,
        ports: Default::default(),
    });
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::context("signal handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::context("signal handler", e))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { conn::serve(ctx, stream).await });
                }
                Err(e) => eprintln!("bgrun: accept failed: {e}"),
            },
            _ = ctx.shutdown.notified() => break,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Jobs keep running: their shims do not depend on us. Only the reconciler stops.
    let _ = handle.edit(|reply| Edit::Shutdown { reply }).await;
    let _ = reconciler.await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Tells the CLI that started us that the socket is listening, so it need not poll.
fn report_ready() {
    let Some(fd) = std::env::var(READY_FD_ENV).ok().and_then(|v| v.parse::<i32>().ok()) else { return };
    // SAFETY: the starting CLI passed this fd to us for exactly this one write.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = f.write_all(b"ok\n");
    // SAFETY: removing our own variable before any other thread reads the environment.
    unsafe { std::env::remove_var(READY_FD_ENV) };
}
