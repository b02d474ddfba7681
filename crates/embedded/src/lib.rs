//! # warren-embedded
//!
//! The whole warren broker inside an application: the same start-up,
//! store, fsync rules, recovery and shutdown as the `warren` binary (both
//! run `server::Node`), with connections that need no TCP port.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warren_embedded::{Broker, Config};
//! let broker = Broker::start(Config::durable("/var/lib/myapp/broker")).await?;
//! // lapin over the in-process transport (a Unix socketpair):
//! let conn = broker.connect(lapin::ConnectionProperties::default()).await?;
//! // or, by URL, from anywhere in the process (service-kit takes the same URL):
//! let conn2 = warren_embedded::connect_url("warren-embedded://default", Default::default()).await?;
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! - Storage: a data folder ([`Config::durable`]: durable queues and
//!   persistent messages survive a restart, exactly as with the server), or
//!   memory ([`Config::in_memory`]: the server's in-memory mode — a memory
//!   arena and no store, no temporary files; nothing survives shutdown).
//! - Connections: [`Broker::connect`] / [`connect_url`] (lapin), or
//!   [`Broker::stream`] (a raw socket stream for any AMQP 0-9-1 client), or
//!   [`Broker::memory_stream`] (an in-memory pipe without a socket, tokio
//!   `AsyncRead`/`AsyncWrite`: the fastest, for clients that take any
//!   stream). An in-process connection logs in like a loopback one (`guest`
//!   allowed).
//! - Listeners, only if asked: AMQP over TCP ([`Config::amqp_listener`]),
//!   the management API and Prometheus ([`Config::management`]).
//! - [`shovel`]: store and forward — a queue's messages moved to an
//!   exchange on another broker, confirmed there before acked here.

mod client;
mod registry;
pub mod shovel;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use client::{connect_uri, connect_url, parse_url, SCHEME};
pub use server::ServerConfig;

/// Where the broker keeps its state.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A data folder (created if missing): the server's store, with its
    /// files, fsync (group commit) and recovery.
    Dir(PathBuf),
    /// Memory only (the server without `data_dir`): nothing is written to
    /// disk and nothing survives a shutdown.
    Memory,
}

/// How to start an embedded broker.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name `warren-embedded://NAME` reaches it by (unique among the
    /// brokers running in this process). Default `default`.
    pub name: String,
    /// Data folder or memory.
    pub storage: Storage,
    /// Listen for AMQP over TCP here too (port 0: any free port; see
    /// [`Broker::amqp_addr`]). Default: no TCP listener.
    pub amqp_listener: Option<SocketAddr>,
    /// Serve the management API here (a fixed port; the server's
    /// `management_port` 0 means off). Default: off.
    pub management: Option<SocketAddr>,
    /// Serve Prometheus metrics here (a fixed port). Default: off.
    pub prometheus: Option<SocketAddr>,
    /// Every other server setting (limits, core settings, bootstrap
    /// definitions, ...). Its `bind`/`port`/`amqp_listener`, `data_dir`,
    /// `management_*` and `prometheus_*` are replaced by the fields above.
    pub server: ServerConfig,
}

impl Config {
    /// A durable broker keeping its state in `dir`.
    pub fn durable(dir: impl Into<PathBuf>) -> Config {
        Config::with_storage(Storage::Dir(dir.into()))
    }

    /// A broker in memory only.
    pub fn in_memory() -> Config {
        Config::with_storage(Storage::Memory)
    }

    fn with_storage(storage: Storage) -> Config {
        Config {
            name: "default".into(),
            storage,
            amqp_listener: None,
            management: None,
            prometheus: None,
            server: ServerConfig::default(),
        }
    }

    /// Sets the name (`warren-embedded://NAME`).
    pub fn name(mut self, name: impl Into<String>) -> Config {
        self.name = name.into();
        self
    }

    /// Also listens for AMQP over TCP on `addr`.
    pub fn amqp_listener(mut self, addr: SocketAddr) -> Config {
        self.amqp_listener = Some(addr);
        self
    }

    /// Also serves the management API on `addr`.
    pub fn management(mut self, addr: SocketAddr) -> Config {
        self.management = Some(addr);
        self
    }

    /// The server settings this config stands for.
    fn server_config(&self) -> ServerConfig {
        let mut s = self.server.clone();
        s.data_dir = match &self.storage {
            Storage::Dir(d) => Some(d.clone()),
            Storage::Memory => None,
        };
        s.amqp_listener = self.amqp_listener.is_some();
        if let Some(a) = self.amqp_listener {
            s.bind = a.ip();
            s.port = a.port();
        }
        // TLS stays as configured in `server` (tls_port 0 = off).
        s.management_port = self.management.map_or(0, |a| a.port());
        if let Some(a) = self.management {
            s.management_bind = a.ip();
        }
        s.prometheus_port = self.prometheus.map_or(0, |a| a.port());
        if let Some(a) = self.prometheus {
            s.prometheus_bind = a.ip();
        }
        s
    }
}

/// A running embedded broker. Stop it with [`Broker::shutdown`]; dropping
/// it instead aborts its connections (what was confirmed is on disk: the
/// sync thread makes its last sync).
pub struct Broker {
    /// The server's node (None once shut down).
    node: Option<server::Node>,
    /// The registry entry (`warren-embedded://NAME`), removed on drop.
    registered: registry::Registration,
}

impl Broker {
    /// Starts a broker inside this process: opens (and recovers) the store
    /// or sets up memory, then the configured listeners. Call it inside a
    /// multi-threaded tokio runtime (connections run on it). Fails if a
    /// broker of the same name runs in this process.
    pub async fn start(config: Config) -> anyhow::Result<Broker> {
        let registered = registry::Registration::reserve(&config.name)?;
        let node = server::Node::start(config.server_config()).await?;
        registered.fill(node.in_process());
        Ok(Broker {
            node: Some(node),
            registered,
        })
    }

    /// The name (`warren-embedded://NAME` reaches this broker).
    pub fn name(&self) -> &str {
        self.registered.name()
    }

    /// `warren-embedded://NAME`: the URL of this broker for
    /// [`connect_url`] and service-kit (guest, vhost `/`).
    pub fn url(&self) -> String {
        format!("{SCHEME}://{}", self.name())
    }

    /// The AMQP TCP listener's address, if one was asked for.
    pub fn amqp_addr(&self) -> Option<SocketAddr> {
        self.node.as_ref().and_then(|n| n.addrs().amqp)
    }

    /// A new in-process connection for any AMQP 0-9-1 client: the
    /// application's end of a Unix socketpair (blocking mode; the client
    /// sends the protocol header first, as over TCP).
    pub fn stream(&self) -> std::io::Result<std::os::unix::net::UnixStream> {
        match &self.node {
            Some(n) => n.connect_in_process(),
            None => Err(std::io::Error::other("the broker is shut down")),
        }
    }

    /// A new in-process connection without a socket: the application's end
    /// of an in-memory pipe (tokio `AsyncRead`/`AsyncWrite`), for clients
    /// that take any stream — faster than [`Broker::stream`] and loopback
    /// TCP (docs/benchmarks.md). lapin needs a socket: it uses `stream`.
    pub fn memory_stream(&self) -> std::io::Result<warren_pipe::PipeStream> {
        match &self.node {
            Some(n) => n.connect_memory(),
            None => Err(std::io::Error::other("the broker is shut down")),
        }
    }

    /// A lapin connection over the in-process transport, as `guest` to
    /// vhost `/` (see [`connect_url`] for others).
    pub async fn connect(
        &self,
        props: lapin::ConnectionProperties,
    ) -> lapin::Result<lapin::Connection> {
        client::connect_stream(self.stream(), client::guest_uri(self.name()), props).await
    }

    /// Closes every connection (320 CONNECTION_FORCED, as the server at
    /// shutdown), waits for them, and makes the store's last sync.
    pub async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            self.registered.clear();
            node.shutdown().await;
        }
    }
}
