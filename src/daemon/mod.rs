//! The daemon: exactly one per `BGRUN_HOME` (an exclusive lock held for its whole life), a control
//! socket only its owner can use, and one handler per request kind.

mod conn;
mod handlers;
mod lock;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::reconcile::{Edit, Handle, Reconciler};
use crate::store::Store;
use crate::supervisor::process::ProcessSupervisor;
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
    pub ports: Arc<crate::reconcile::views::PortCache>,
    /// Each job's last health check, as its probe posts it.
    pub health: Arc<crate::supervisor::probes::HealthBoard>,
}

/// Environment variable naming the fd on which the daemon reports that it is listening.
pub const READY_FD_ENV: &str = "BGRUN_READY_FD";

pub fn main(home: Home) -> Result<()> {
    let Some(_lock) = lock::acquire(&home.lock())? else {
        // Another daemon owns this home; the caller will talk to it.
        return Ok(());
    };
    // Large buffers (an `up` of 1000 jobs is a 4 MB request, and its answer and `list`'s are
    // hundreds of kB) get pages of their own, returned when freed. By default glibc raises this
    // threshold after the first such free, and they are carved from the heap instead, which then
    // stays as large as the largest request ever was.
    // SAFETY: mallopt only sets an allocator parameter; nothing is allocated concurrently yet.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    let store = Store::open(&home.database())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::context("cannot start the async runtime", e))?;
    rt.block_on(serve(home, store))
}

async fn serve(home: Home, store: Store) -> Result<()> {
    let logs = Arc::new(crate::logs::watch::LogWatch::default());
    let (reports_tx, reports) = tokio::sync::mpsc::unbounded_channel();
    let health = Arc::new(crate::supervisor::probes::HealthBoard::default());
    let sup = ProcessSupervisor::new(home.clone(), reports_tx, logs.clone(), health.clone());
    let mut parts = Reconciler::load(store, Box::new(sup), Arc::new(crate::clock::SystemClock))?;
    if home.rebooted() {
        parts.reconciler.resurrect();
    }
    let handle = parts.handle;
    let socket = home.socket();
    // We hold the lock, so a socket file here is a leftover of a daemon that died.
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).map_err(|e| Error::context(format!("cannot listen on {}", socket.display()), e))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::context("cannot secure the control socket", e))?;
    report_ready();

    let reconciler = tokio::spawn(parts.reconciler.run(parts.inbox, reports));
    let ctx = Arc::new(Ctx {
        handle: handle.clone(),
        home,
        started: Instant::now(),
        shutdown: Notify::new(),
        logs,
        ports: Default::default(),
        health,
    });
    let warm = ctx.clone();
    tokio::spawn(async move { handlers::warm_ports(&warm).await });
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::context("signal handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::context("signal handler", e))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = AcceptBackoff::default();
    loop {
        // At the cap, new clients wait in the socket's backlog until a connection ends.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = ctx.shutdown.notified() => break,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        conn::serve(ctx, stream).await;
                        drop(slot);
                    });
                }
                // Out of file descriptors (or another passing failure): retrying at once would
                // spin and flood the log, so wait, doubling up to a second, and say so once.
                Err(e) => backoff.wait(&e).await,
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

/// Connections served at once; more wait in the listen backlog. Far above what any real use needs
/// (every CLI call is one short connection), low enough that file descriptors stay for the jobs.
const MAX_CONNECTIONS: usize = 256;

/// The pause after a failed `accept`, as mini-redis does it.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<std::time::Duration>,
}

impl AcceptBackoff {
    async fn wait(&mut self, e: &std::io::Error) {
        let pause = match self.pause {
            None => {
                crate::warn!("bgrun: accept failed: {e}; backing off until it works again");
                std::time::Duration::from_millis(10)
            }
            Some(p) => (p * 2).min(std::time::Duration::from_secs(1)),
        };
        self.pause = Some(pause);
        tokio::time::sleep(pause).await;
    }

    fn reset(&mut self) {
        if self.pause.take().is_some() {
            crate::warn!("bgrun: accepting connections again");
        }
    }
}

/// READY=1 to $NOTIFY_SOCKET (a path, or `@name` in the abstract namespace), if there is one.
fn notify_systemd() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let target = target.to_string_lossy().into_owned();
    let address = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    };
    if let (Ok(socket), Ok(address)) = (UnixDatagram::unbound(), address) {
        let _ = socket.send_to_addr(b"READY=1", &address);
    }
}

/// Tells the CLI that started us that the socket is listening, so it need not poll; or, started
/// by systemd (`bgrun startup`'s unit, Type=notify), tells systemd.
fn report_ready() {
    notify_systemd();
    let Some(fd) = std::env::var(READY_FD_ENV).ok().and_then(|v| v.parse::<i32>().ok()) else { return };
    // SAFETY: the starting CLI passed this fd to us for exactly this one write.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = f.write_all(b"ok\n");
    // SAFETY: removing our own variable before any other thread reads the environment.
    unsafe { std::env::remove_var(READY_FD_ENV) };
}
