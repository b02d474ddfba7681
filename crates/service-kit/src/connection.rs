//! A supervised connection: connects with jittered exponential backoff, re-declares the topology on
//! every connect, and publishes the current connection (or none while down) to the kit's tasks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::config::KitConfig;
use crate::error::{KitError, Result};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::spans::Peer;
use crate::topology::Topology;

/// How long one TCP + AMQP handshake attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection of one generation (incremented on every successful connect).
#[derive(Clone)]
pub struct Live {
    /// The lapin connection.
    pub conn: Arc<Connection>,
    /// 1 for the first connection, +1 per reconnect.
    pub generation: u64,
}

/// A connection that keeps itself up. Cheap to clone.
#[derive(Clone)]
pub struct Managed {
    /// Shared state.
    inner: Arc<Inner>,
}

/// State shared by a [`Managed`] handle and its supervisor task.
struct Inner {
    /// Role name (`publish` / `consume`), used in logs, metrics and health.
    role: String,
    /// The current connection, `None` while (re)connecting.
    current: watch::Receiver<Option<Live>>,
    /// Declarations replayed on every connect.
    topology: Arc<Mutex<Topology>>,
    /// The broker's address and port, for the spans.
    peer: Peer,
}

impl Managed {
    /// Starts the supervisor of a connection for `role`.
    pub(crate) fn start(
        cfg: KitConfig,
        role: &str,
        topology: Arc<Mutex<Topology>>,
        metrics: Arc<Metrics>,
        health: Health,
        shutdown: watch::Receiver<bool>,
    ) -> Managed {
        let (tx, rx) = watch::channel(None);
        health.set_connection(role, false);
        let peer = Peer::from_url(&cfg.url);
        let sup = Supervisor {
            cfg,
            role: role.into(),
            topology: topology.clone(),
            metrics,
            health,
            tx,
            shutdown,
        };
        tokio::spawn(sup.run());
        Managed {
            inner: Arc::new(Inner {
                role: role.into(),
                current: rx,
                topology,
                peer,
            }),
        }
    }

    /// The role name.
    pub fn role(&self) -> &str {
        &self.inner.role
    }

    /// The broker as the spans name it.
    pub(crate) fn peer(&self) -> &Peer {
        &self.inner.peer
    }

    /// The connection now, if up.
    pub fn current(&self) -> Option<Live> {
        self.inner.current.borrow().clone()
    }

    /// Waits until connected, at most until `deadline`.
    pub async fn wait(&self, deadline: Instant) -> Result<Live> {
        let mut rx = self.inner.current.clone();
        loop {
            if let Some(live) = rx.borrow_and_update().clone() {
                if live.conn.status().connected() {
                    return Ok(live);
                }
            }
            let waited = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(KitError::Shutdown),
                Err(_) => return Err(KitError::NotConnected(waited)),
            }
        }
    }

    /// Adds declarations to replay on every connect (they are not declared now).
    pub fn add_topology(&self, t: &Topology) {
        if let Ok(mut mine) = self.inner.topology.lock() {
            mine.merge(t);
        }
    }
}

/// The task that owns the connection.
struct Supervisor {
    /// Settings.
    cfg: KitConfig,
    /// Role name.
    role: String,
    /// Declarations replayed on connect.
    topology: Arc<Mutex<Topology>>,
    /// Counters.
    metrics: Arc<Metrics>,
    /// Health state.
    health: Health,
    /// Publishes the current connection.
    tx: watch::Sender<Option<Live>>,
    /// Becomes true on shutdown.
    shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut generation: u64 = 0;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let conn = match self.connect_and_declare().await {
                Ok(c) => c,
                Err(e) => {
                    let delay = self.cfg.backoff.delay(attempt);
                    tracing::warn!(role = %self.role, attempt, ?delay, error = %e, "connect failed; retrying");
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.changed() => {}
                    }
                    continue;
                }
            };
            attempt = 0;
            let (lost_tx, lost_rx) = oneshot::channel::<lapin::Error>();
            let mut lost_tx = Some(lost_tx);
            conn.on_error(move |e| {
                if let Some(tx) = lost_tx.take() {
                    let _ = tx.send(e);
                }
            });
            let conn = Arc::new(conn);
            generation += 1;
            if generation > 1 {
                self.metrics.reconnect(&self.role);
            }
            tracing::info!(role = %self.role, generation, "connected");
            self.tx.send_replace(Some(Live {
                conn: conn.clone(),
                generation,
            }));
            self.health.set_connection(&self.role, true);
            tokio::select! {
                e = lost_rx => {
                    let reason = e.map(|e| e.to_string()).unwrap_or_else(|_| "closed".into());
                    tracing::warn!(role = %self.role, %reason, "connection lost; reconnecting");
                }
                _ = self.shutdown.changed() => {
                    let _ = conn.close(200, "shutdown").await;
                }
            }
            self.tx.send_replace(None);
            self.health.set_connection(&self.role, false);
        }
        self.tx.send_replace(None);
    }

    async fn connect_and_declare(&self) -> Result<Connection> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("{}.{}", self.cfg.connection_name, self.role).into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect(&self.cfg, props))
            .await
            .map_err(|_| KitError::NotConnected(CONNECT_TIMEOUT))??;
        let topology = self.topology.lock().map(|t| t.clone()).unwrap_or_default();
        let ch = conn.create_channel().await?;
        if let Err(e) = topology.declare(&ch).await {
            tracing::error!(role = %self.role, error = %e, "topology declaration failed");
            let _ = conn.close(200, "topology failed").await;
            return Err(e.into());
        }
        let _ = ch.close(200, "declared").await;
        Ok(conn)
    }
}

/// The URL scheme of a broker inside this process (`warren-embedded://NAME`, feature `embedded`).
const EMBEDDED_SCHEME: &str = "warren-embedded://";

/// One connection attempt to the broker `cfg.url` names: `amqp://` / `amqps://` over TCP, or
/// `warren-embedded://NAME` (the same URI syntax) to an embedded broker over its in-process
/// transport, so one setting switches between the two.
pub(crate) async fn connect(cfg: &KitConfig, props: ConnectionProperties) -> Result<Connection> {
    if cfg.url.starts_with(EMBEDDED_SCHEME) {
        return connect_embedded(cfg, props).await;
    }
    let mut uri: AMQPUri = cfg.url.parse().map_err(|e: String| KitError::Config(e))?;
    uri.query.heartbeat = Some(cfg.heartbeat_secs);
    Ok(Connection::connect_uri(uri, props).await?)
}

#[cfg(feature = "embedded")]
async fn connect_embedded(cfg: &KitConfig, props: ConnectionProperties) -> Result<Connection> {
    let mut uri = warren_embedded::parse_url(&cfg.url).map_err(KitError::Config)?;
    uri.query.heartbeat = Some(cfg.heartbeat_secs);
    Ok(warren_embedded::connect_uri(uri, props).await?)
}

#[cfg(not(feature = "embedded"))]
async fn connect_embedded(cfg: &KitConfig, _props: ConnectionProperties) -> Result<Connection> {
    Err(KitError::Config(format!(
        "{}: service-kit was built without its `embedded` feature",
        cfg.url
    )))
}
