//! The dashboard: a web page and a versioned HTTP API over the daemon, served by a process of its
//! own that talks to the daemon through [`Client`] like the CLI does. Every request needs the
//! token kept in `BGRUN_HOME` ([`auth`]); the page follows the jobs live over Server-Sent Events
//! ([`live`]).

mod api;
mod auth;
mod live;
mod metrics;
mod openapi;
mod page;
mod projects;

pub use auth::token_file;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Where the dashboard listens unless told: the first free port from here on.
pub const DEFAULT_PORT: u16 = 3000;
/// How many ports after the default are tried before giving up.
const PORTS_TRIED: u16 = 100;
/// The name of the dashboard's job.
pub const JOB_NAME: &str = "bgrun-dashboard";
/// Printed once listening: the job's readiness waits for it.
pub const LISTENING: &str = "bgrun dashboard listening on";
/// Exit code when an explicit port is taken: not worth restarting for.
pub const PORT_BUSY_EXIT: i32 = 4;

#[derive(Parser, Debug)]
#[command(name = "bgrun-dashboard", about = "bgrun's web dashboard and HTTP API (started by `bgrun dashboard`)")]
pub struct Args {
    /// Listen on this port only (default: 3000, or the next free one).
    #[arg(long, env = "BGRUN_DASHBOARD_PORT")]
    pub port: Option<u16>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// A host name the dashboard may be reached by besides IP addresses and localhost (e.g. the
    /// name a reverse proxy forwards); repeatable.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
}

/// What every request handler can reach.
pub struct App {
    pub home: Home,
    pub token: auth::Token,
    pub allowed: auth::Hosts,
    pub live: live::Live,
}

/// Runs the dashboard until it is stopped; the process's exit code.
pub fn main() -> i32 {
    let args = Args::parse();
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bgrun-dashboard: {e}");
            if e.kind == ErrorKind::Conflict { PORT_BUSY_EXIT } else { e.kind.exit_code() }
        }
    }
}

fn serve(args: Args) -> Result<()> {
    let home = Home::from_env()?;
    let token = auth::Token::load_or_create(&home)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::context("cannot start the async runtime", e))?;
    rt.block_on(async move {
        let listener = bind(args.bind, args.port).await?;
        let address = listener.local_addr().map_err(|e| Error::context("listening socket", e))?;
        let url = base_url(address);
        let app = Arc::new(App {
            live: live::Live::start(home.clone()),
            home: home.clone(),
            token,
            allowed: auth::Hosts::new(args.allow_hosts),
        });
        let state = serde_json::to_string(&Listening { url: url.clone(), pid: std::process::id() })
            .map_err(|e| Error::context("cannot encode dashboard.json", e))?;
        std::fs::write(state_file(&home), state).map_err(|e| Error::context("cannot write dashboard.json", e))?;
        println!("{LISTENING} {url}");
        axum::serve(listener, routes(app)).await.map_err(|e| Error::context("the dashboard's server failed", e))
    })
}

/// `dashboard.json` in `BGRUN_HOME`: where the running dashboard listens, for `bgrun dashboard`.
pub fn state_file(home: &Home) -> std::path::PathBuf {
    home.root().join("dashboard.json")
}

/// What `dashboard.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Listening {
    pub url: String,
    pub pid: u32,
}

impl Listening {
    /// The last dashboard's, if it wrote one.
    pub fn read(home: &Home) -> Option<Listening> {
        serde_json::from_str(&std::fs::read_to_string(state_file(home)).ok()?).ok()
    }
}

/// The URL the dashboard is reached at on this machine.
fn base_url(address: SocketAddr) -> String {
    let ip = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, address.port()))
}

/// Binds `port`, or without one the first free port from [`DEFAULT_PORT`] on.
async fn bind(ip: IpAddr, port: Option<u16>) -> Result<tokio::net::TcpListener> {
    let candidates = match port {
        Some(p) => p..=p,
        None => DEFAULT_PORT..=DEFAULT_PORT + PORTS_TRIED - 1,
    };
    let mut last = None;
    for p in candidates.clone() {
        match tokio::net::TcpListener::bind(SocketAddr::new(ip, p)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(Error::context(format!("cannot listen on {ip}:{p}"), e)),
        }
    }
    let which = if port.is_some() {
        format!("port {} is", candidates.start())
    } else {
        format!("ports {}-{} are", candidates.start(), candidates.end())
    };
    let why = last.map_or_else(String::new, |e| format!(" ({e})"));
    Err(Error::of(ErrorKind::Conflict, format!("{which} on {ip} busy{why}")).with_hint("choose another with --port"))
}

fn routes(app: Arc<App>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/metrics", get(metrics::handle))
        .nest("/api/v1", api::routes())
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::guard))
        .with_state(app)
}

/// Runs `f` with a connection to the daemon, on the blocking pool (the client is synchronous).
pub async fn call<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut Client) -> Result<T> + Send + 'static,
) -> Result<T> {
    let home = app.home.clone();
    blocking(move || f(&mut Client::connect(&home)?)).await
}

/// Runs `f` on the blocking pool: the client, and reading files, would stall every other request
/// and stream of this single-threaded server.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::new(format!("the dashboard's worker failed: {e}")))?
}
