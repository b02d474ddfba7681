//! The management HTTP API: RabbitMQ 3.x's `/api` on port 15672, the only
//! code in warren that speaks JSON.
//!
//! Reads come from the statistics snapshot ([`Stats`]), which the server
//! publishes every `collect_statistics_interval_ms` (built under the core
//! lock by `Broker::snapshot`, swapped in with an `ArcSwap`): a request
//! never holds the core lock to read. Writes go through the core's
//! `mgmt_*` entry points with the lock held for that one call ([`Core`]).
//!
//! Routing is done here rather than by axum's router because RabbitMQ's
//! clients percent-encode every non-alphanumeric byte of a segment (`/` as
//! `%2F` in vhost names): the raw path is split on `/` first and each
//! segment decoded after (`http.rs`).

#![allow(clippy::result_large_err)] // error paths build a Response; none is hot

mod admin;
mod admin_defs;
mod admin_perms;
mod api_doc;
mod auth_attempts;
mod console;
mod defs;
mod http;
mod info;
mod json;
mod list;
mod obj_history;
mod objects;
mod params_api;
pub mod prometheus;
mod routes;
mod rows;
mod samples;
pub mod shovels;
mod stats;
mod views;

#[cfg(test)]
mod list_tests;
#[cfg(test)]
mod samples_tests;

use std::net::SocketAddr;
use std::sync::Arc;

use broker_core::Broker;

pub use auth_attempts::{AuthAttempts, AuthCounts, AuthProtocol, AUTH_PROTOCOL_LABELS};
pub use shovels::{ShovelBoard, ShovelRow};
pub use stats::Stats;

/// How the API reaches the core: `with_core` runs `f` with the core lock
/// held and hands out the output it produced (the server's `after_batch`).
pub trait Core: Send + Sync + 'static {
    /// Runs `f` on the locked core, then flushes its output.
    fn with_core(&self, f: &mut dyn FnMut(&mut Broker));
}

/// A listener the overview and the health checks report.
#[derive(Debug, Clone)]
pub struct Listener {
    /// RabbitMQ's names: `amqp`, `amqp/ssl`, `http`, `https`,
    /// `http/prometheus`, `https/prometheus`.
    pub protocol: &'static str,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Listener {
    /// Whether it speaks TLS (by RabbitMQ's protocol names).
    pub fn tls(&self) -> bool {
        self.protocol.ends_with("/ssl") || self.protocol.starts_with("https")
    }
}

/// The API's settings.
#[derive(Debug, Clone)]
pub struct MgmtConfig {
    /// Address and port (port 0 is chosen by the caller: see the server).
    pub addr: SocketAddr,
    /// Largest request body accepted (RabbitMQ: 20,000,000); larger → 400.
    pub http_body_bytes_max: usize,
    /// A request taking longer is answered 503.
    pub request_timeout_ms: u64,
    /// Requests served at once; more are answered 503 at once.
    pub requests_concurrent_max: usize,
    /// The statistics period (reported in the overview's sample policy).
    pub collect_statistics_interval_ms: u64,
    /// Login counters (the API's Basic auth adds to protocol `http`).
    pub auth_attempts: Arc<AuthAttempts>,
}

impl Default for MgmtConfig {
    fn default() -> Self {
        MgmtConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 15672)),
            http_body_bytes_max: 20_000_000,
            request_timeout_ms: 60_000,
            requests_concurrent_max: 64,
            collect_statistics_interval_ms: 5_000,
            auth_attempts: Arc::default(),
        }
    }
}

/// Everything a request handler needs.
pub(crate) struct App {
    /// Settings.
    pub config: MgmtConfig,
    /// The core, for writes and authentication.
    pub core: Arc<dyn Core>,
    /// The published snapshot.
    pub stats: Arc<Stats>,
    /// Listeners to report (AMQP and this one).
    pub listeners: Vec<Listener>,
    /// Bounds concurrent requests (`requests_concurrent_max`).
    pub permits: tokio::sync::Semaphore,
    /// `rabbit@<hostname>`-style node name.
    pub node: String,
    /// Start time, for the node's uptime.
    pub started: std::time::Instant,
    /// `rabbitmq-cluster-id-…`, as RabbitMQ's `internal_cluster_id`.
    pub cluster_id: String,
    /// The server's dynamic shovels (`/api/shovels`).
    pub shovels: ShovelBoard,
}

/// Binds the API's listener (so the caller can log and report its address).
/// A plain (std) listener, so the caller can hand it to the API's own
/// runtime (`Api::serve` registers it there).
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("binding management listener {addr}: {e}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What the API and the metrics are served on: a plain
/// `tokio::net::TcpListener`, or the server's TLS listener (which does
/// the handshakes; this crate never sees TLS).
pub use axum::serve::Listener as HttpListener;

/// The peer of a request's connection, whatever listener accepted it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// Any listener with socket addresses, so one `Connected` impl gives the
/// handlers their `Peer` (axum implements it for `TcpListener` only).
pub(crate) struct Accepting<L>(pub L);

impl<L: HttpListener<Addr = SocketAddr>> HttpListener for Accepting<L> {
    type Io = L::Io;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl std::future::Future<Output = (L::Io, SocketAddr)> + Send {
        self.0.accept()
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl<L: HttpListener<Addr = SocketAddr>>
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Accepting<L>>> for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Accepting<L>>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// The management API: one state shared by every listener it is served on
/// (HTTP and HTTPS: the same limits, users and snapshot).
#[derive(Clone)]
pub struct Api {
    /// The handlers' state.
    app: Arc<App>,
}

impl Api {
    /// The API with its settings; `listeners` are those the overview and
    /// the health checks report (AMQP and the API's own).
    pub fn new(
        config: MgmtConfig,
        core: Arc<dyn Core>,
        stats: Arc<Stats>,
        listeners: Vec<Listener>,
        shovels: ShovelBoard,
    ) -> Api {
        Api {
            app: Arc::new(App {
                permits: tokio::sync::Semaphore::new(config.requests_concurrent_max),
                config,
                core,
                stats,
                listeners,
                node: node_name(),
                started: std::time::Instant::now(),
                cluster_id: cluster_id(),
                shovels,
            }),
        }
    }

    /// Serves the API on `listener` until `shutdown` resolves. Run it on the
    /// API's own runtime: rendering a list of 10,000 queues is milliseconds
    /// of CPU that must not sit on a worker thread of the broker's
    /// connections.
    pub async fn serve<L: HttpListener<Addr = SocketAddr>>(
        self,
        listener: L,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = axum::Router::new()
            .fallback(http::handle)
            .with_state(self.app)
            .into_make_service_with_connect_info::<Peer>();
        axum::serve(Accepting(listener), router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// A random `rabbitmq-cluster-id-<22 base64url chars>`, one per process
/// (shared by `/api` and the metrics; not durable yet).
pub(crate) fn cluster_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(new_cluster_id).clone()
}

fn new_cluster_id() -> String {
    use base64::Engine;
    use std::hash::{BuildHasher, Hasher};
    let mut raw = [0u8; 16];
    for (i, chunk) in raw.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    format!("rabbitmq-cluster-id-{id}")
}

/// `rabbit@<hostname>`, as RabbitMQ names its node (clients expect the form).
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("rabbit@{host}")
}
