//! The network side of warren: the TCP listener, one task pair (reader and
//! writer) per connection, heartbeats, the group-commit sync thread, and
//! graceful shutdown. All broker state lives in `broker_core::Broker`
//! behind one mutex, taken once per batch of frames read from a socket.

pub mod bootstrap;
mod cert_login;
mod config;
mod conn;
mod disk;
mod handshake;
mod https;
mod node;
mod recovery_progress;
mod shovels;
mod sink;
mod stream;
mod sync;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use broker_core::Broker;
use parking_lot::Mutex;
use tokio::sync::watch;

pub use config::ServerConfig;
pub use node::{Addrs, InProcess, Node};

/// Resident memory of this process, from /proc/self/statm.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096))
}

/// MemTotal from /proc/meminfo.
fn total_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory alarm's reason if RSS is above `limit_bytes` (like
/// RabbitMQ's vm_memory_high_watermark, 40% of RAM by default).
fn memory_alarm(limit_bytes: u64) -> Option<String> {
    let rss = rss_bytes()?;
    (rss > limit_bytes)
        .then(|| format!("memory: {rss} bytes resident, high watermark {limit_bytes}"))
}

/// State shared by every connection task.
pub(crate) struct Shared {
    pub core: Mutex<Broker>,
    pub config: ServerConfig,
    /// Wakes the sync thread when the core waits on the store.
    pub sync: sync::SyncSignal,
    /// True while a resource alarm blocks publishers; readers of publishing
    /// connections wait on it.
    pub alarm: watch::Sender<bool>,
    /// Every reason to block publishers (`disk::Alarms::reason` combines them).
    pub alarms: Mutex<disk::Alarms>,
    /// The free-disk watch of the data folder.
    pub disk: disk::DiskWatch,
    /// Where connection writer tasks run (see `ServerConfig::writer_threads`).
    pub writers: tokio::runtime::Handle,
    /// Logins by protocol: the AMQP handshake counts here, the API and the
    /// metrics (which show them) count HTTP logins.
    pub auth_attempts: Arc<mgmt::AuthAttempts>,
    /// The dynamic shovels' states (`shovels.rs` writes, `/api/shovels` reads).
    pub shovels: mgmt::ShovelBoard,
}

impl Shared {
    /// Changes one alarm source and raises or clears the resource alarm in
    /// the core and for readers accordingly.
    pub fn update_alarms(&self, core: &mut Broker, change: impl FnOnce(&mut disk::Alarms)) {
        disk::update(&self.alarms, &self.alarm, core, change);
    }

    /// Called after every batch of work with the core lock held: hands out
    /// output and wakes the syncer if confirms wait on the disk.
    pub fn after_batch(&self, core: &mut Broker) {
        core.flush();
        if core.sync_wanted().is_some() {
            self.sync.wake();
        }
    }
}

impl mgmt::Core for Shared {
    fn with_core(&self, f: &mut dyn FnMut(&mut Broker)) {
        let mut core = self.core.lock();
        f(&mut core);
        self.after_batch(&mut core);
    }
}

/// Threads of the management API's own runtime (HTTP, JSON rendering and
/// the statistics collection run there, never on the connections' workers).
const MANAGEMENT_THREADS: usize = 1;

/// The bound listeners of the API or of the metrics: plain HTTP and HTTPS,
/// each if its port is not 0 (HTTPS also needs a certificate).
struct HttpPorts {
    /// The plain HTTP listener.
    http: Option<std::net::TcpListener>,
    /// The HTTPS listener (its handshakes are `https.rs`'s).
    https: Option<std::net::TcpListener>,
}

impl HttpPorts {
    /// Binds `port` and `tls_port` on `bind` (so a port in use fails the
    /// start), logging each with its RabbitMQ protocol name, and adds them
    /// to `report`.
    fn bind(
        bind: std::net::IpAddr,
        (port, tls_port): (u16, u16),
        tls: bool,
        (http_name, https_name): (&'static str, &'static str),
        report: &mut Vec<mgmt::Listener>,
    ) -> anyhow::Result<HttpPorts> {
        let mut one = |port: u16, protocol: &'static str| -> anyhow::Result<_> {
            if port == 0 {
                return Ok(None);
            }
            let addr = std::net::SocketAddr::new(bind, port);
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding the {protocol} listener {addr}"))?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            tracing::info!("warren listening on {addr} ({protocol})");
            report.push(mgmt::Listener { protocol, addr });
            Ok(Some(listener))
        };
        Ok(HttpPorts {
            http: one(port, http_name)?,
            https: if tls {
                one(tls_port, https_name)?
            } else {
                None
            },
        })
    }

    fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }
}

/// Spawns `serve` on `rt` for each listener of `ports` (the HTTPS one
/// wrapped in `https::HttpsListener` with `tls`), each stopping when `stop`
/// changes.
fn spawn_http<F, Fut>(
    rt: &tokio::runtime::Runtime,
    ports: HttpPorts,
    tls: Option<&Arc<tls::TlsConfigHolder>>,
    handshake_timeout_ms: u64,
    (label, tls_label): (&'static str, &'static str),
    stop: &watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Served, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let shutdown = || {
        let mut stop = stop.clone();
        let f: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = stop.changed().await;
        });
        f
    };
    let _guard = rt.enter();
    if let Some(l) = ports.http {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => {
                let run = serve(Served::Plain(l), shutdown());
                rt.spawn(async move {
                    if let Err(e) = run.await {
                        tracing::error!("{label} listener stopped: {e}");
                    }
                });
            }
            Err(e) => tracing::error!("{label} listener: {e}"),
        }
    }
    if let (Some(l), Some(holder)) = (ports.https, tls) {
        match https::HttpsListener::new(l, holder.clone(), handshake_timeout_ms, tls_label) {
            Ok(l) => {
                let run = serve(Served::Tls(l), shutdown());
                rt.spawn(async move {
                    if let Err(e) = run.await {
                        tracing::error!("{tls_label} listener stopped: {e}");
                    }
                });
            }
            Err(e) => tracing::error!("{tls_label} listener: {e}"),
        }
    }
}

/// A listener to serve HTTP on: plain or TLS.
enum Served {
    /// Plain TCP.
    Plain(tokio::net::TcpListener),
    /// TLS (`https.rs`).
    Tls(https::HttpsListener),
}

/// Starts the management API and the Prometheus listener, each on HTTP
/// and HTTPS (each if its port is not 0; HTTPS with `tls`, the holder
/// AMQPS uses), and the task that publishes their statistics snapshot
/// every `collect_statistics_interval_ms`, on a runtime of their own
/// (returned: dropping it stops them). `report` lists the AMQP listeners.
fn start_management(
    shared: &Arc<Shared>,
    mut report: Vec<mgmt::Listener>,
    tls: Option<&Arc<tls::TlsConfigHolder>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::runtime::Runtime>> {
    let config = &shared.config;
    let api = HttpPorts::bind(
        config.management_bind,
        (config.management_port, config.management_tls_port),
        tls.is_some(),
        ("http", "https"),
        &mut report,
    )?;
    let mut metrics_report = Vec::new();
    let metrics = HttpPorts::bind(
        config.prometheus_bind,
        (config.prometheus_port, config.prometheus_tls_port),
        tls.is_some(),
        ("http/prometheus", "https/prometheus"),
        &mut metrics_report,
    )?;
    report.extend(metrics_report);
    if api.is_empty() && metrics.is_empty() {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MANAGEMENT_THREADS)
        .thread_name("warren-mgmt")
        .enable_all()
        .build()
        .context("starting the management runtime")?;
    let stats = Arc::new(mgmt::Stats::default());
    {
        let (shared, stats) = (shared.clone(), stats.clone());
        let period = Duration::from_millis(config.collect_statistics_interval_ms.max(10));
        rt.spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let (snap, held_us) = {
                    let mut core = shared.core.lock();
                    // Two clock reads per collection, to report the hold.
                    let started = std::time::Instant::now();
                    let s = core.snapshot();
                    shared.after_batch(&mut core);
                    (s, started.elapsed().as_micros() as u64)
                };
                tracing::debug!(held_us, queues = snap.queues.len(), "statistics collected");
                stats.publish(snap);
            }
        });
    }
    let handshake_ms = config.handshake_timeout_ms;
    if !metrics.is_empty() {
        let dir = config.data_dir.clone();
        let syncer = shared.disk.store().cloned();
        let probe = mgmt::prometheus::NodeProbe {
            memory_limit_bytes: memory_limit_bytes(config),
            disk_free_limit_bytes: shared.disk.limit_bytes(),
            disk_free: Arc::new(move || {
                dir.as_deref().and_then(|d| store::disk_free_bytes(d).ok())
            }),
            store_io: Arc::new(move || {
                syncer.as_ref().map(|s| {
                    let io = s.io();
                    mgmt::prometheus::StoreIo {
                        write_ops: io.write_ops,
                        write_bytes: io.write_bytes,
                        write_time_us: io.write_time_us,
                        sync_ops: io.sync_ops,
                        sync_time_us: io.sync_time_us,
                    }
                })
            }),
        };
        let addr = std::net::SocketAddr::new(config.prometheus_bind, config.prometheus_port);
        let prom_config = mgmt::prometheus::PromConfig {
            addr,
            probe,
            auth: config.prometheus_auth,
            auth_attempts: shared.auth_attempts.clone(),
        };
        let core: Arc<dyn mgmt::Core> = shared.clone();
        let m = mgmt::prometheus::Metrics::new(prom_config, stats.clone(), core);
        let labels = ("prometheus", "https/prometheus");
        spawn_http(
            &rt,
            metrics,
            tls,
            handshake_ms,
            labels,
            &stop,
            |l, shutdown| {
                let m = m.clone();
                async move {
                    match l {
                        Served::Plain(l) => m.serve(l, shutdown).await,
                        Served::Tls(l) => m.serve(l, shutdown).await,
                    }
                }
            },
        );
    }
    if !api.is_empty() {
        let mconfig = mgmt::MgmtConfig {
            addr: std::net::SocketAddr::new(config.management_bind, config.management_port),
            http_body_bytes_max: config.http_body_bytes_max,
            request_timeout_ms: config.http_request_timeout_ms,
            requests_concurrent_max: config.http_requests_concurrent_max,
            collect_statistics_interval_ms: config.collect_statistics_interval_ms,
            auth_attempts: shared.auth_attempts.clone(),
        };
        let core: Arc<dyn mgmt::Core> = shared.clone();
        let a = mgmt::Api::new(mconfig, core, stats, report, shared.shovels.clone());
        let labels = ("management API", "https");
        spawn_http(&rt, api, tls, handshake_ms, labels, &stop, |l, shutdown| {
            let a = a.clone();
            async move {
                match l {
                    Served::Plain(l) => a.serve(l, shutdown).await,
                    Served::Tls(l) => a.serve(l, shutdown).await,
                }
            }
        });
    }
    Ok(Some(rt))
}

/// The memory high watermark: `memory_high_watermark_bytes`, or 40% of RAM.
fn memory_limit_bytes(config: &ServerConfig) -> u64 {
    match config.memory_high_watermark_bytes {
        0 => total_memory_bytes().map_or(u64::MAX, |t| t / 10 * 4),
        b => b,
    }
}

/// Runs the broker until `shutdown` resolves, then closes every client with
/// 320 CONNECTION_FORCED and returns (`Node::start`, then `Node::shutdown`).
pub async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    shutdown.await;
    node.shutdown().await;
    Ok(())
}

/// A runtime of our own, shut down without waiting when dropped — also on
/// an error return from `serve` (a plain drop inside the async `serve` would
/// panic: "Cannot drop a runtime in a context where blocking is not allowed").
struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
