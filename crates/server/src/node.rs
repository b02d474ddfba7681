//! A running broker: the one start-up and shutdown path of the `warren`
//! binary (`serve`) and of the embedded broker (`warren-embedded`).
//! `Node::start` opens the store (recovery), applies the bootstrap file,
//! starts the sync thread, the ticker, the management runtime and the
//! listeners that are configured; connections come from the listeners'
//! accept loop and from `connect_in_process` (a Unix socketpair, served by
//! the same connection code); `shutdown` closes them all with 320
//! CONNECTION_FORCED, waits for them, and stops the sync thread after its
//! last sync.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use broker_core::persist::NoPersistence;
use broker_core::Broker;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::{
    conn, disk, memory_alarm, memory_limit_bytes, start_management, sync, tls, total_memory_bytes,
    BackgroundRuntime, ServerConfig, Shared,
};

/// The connection tasks of a node, and what starting one needs. Shared by
/// the accept loop and the in-process connector.
pub(crate) struct Conns {
    /// The broker state every connection uses.
    shared: Arc<Shared>,
    /// Running connection tasks (taken out and joined at shutdown).
    tasks: Mutex<JoinSet<()>>,
    /// `connections_max` permits; a connection holds one for its life.
    limit: Arc<Semaphore>,
    /// Becomes true at shutdown: connections see it and close.
    stop: watch::Receiver<bool>,
    /// Set once shutdown has begun: no new connections from then on.
    closed: AtomicBool,
    /// The runtime connection tasks run on (the one `start` ran on).
    runtime: tokio::runtime::Handle,
}

impl Conns {
    /// Starts a connection task made by `run` (given the shared state, the
    /// stop signal and the `connections_max` permit it holds for its life).
    /// Err (and `run` not called) when the connection limit is reached or
    /// the node is shutting down.
    fn spawn<F, Fut>(&self, run: F) -> std::io::Result<()>
    where
        F: FnOnce(Arc<Shared>, watch::Receiver<bool>, conn::Permit) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the broker is shutting down"));
        }
        let Ok(permit) = self.limit.clone().try_acquire_owned() else {
            return Err(std::io::Error::other("connection limit reached"));
        };
        // Spawned as is: wrapping it in `async move { fut.await; .. }` would
        // store the connection's future twice in the task (rustc keeps the
        // captured future and the awaited one apart): +1.3 KiB per
        // connection, measured.
        let fut = run(self.shared.clone(), self.stop.clone(), permit);
        let mut tasks = self.tasks.lock();
        tasks.spawn_on(fut, &self.runtime);
        while tasks.try_join_next().is_some() {}
        Ok(())
    }

    /// A new in-process connection: the broker serves one end of a Unix
    /// socketpair (like a plain TCP connection), the caller gets the other.
    pub(crate) fn connect_in_process(&self) -> std::io::Result<std::os::unix::net::UnixStream> {
        let (client, ours) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let ours = {
            let _in_runtime = self.runtime.enter();
            tokio::net::UnixStream::from_std(ours)?
        };
        self.spawn(|shared, stop, permit| conn::run_unix(ours, shared, stop, permit))?;
        Ok(client)
    }

    /// A new in-memory in-process connection: the broker serves one end
    /// of a warren-pipe pair, the caller gets the other.
    pub(crate) fn connect_memory(&self) -> std::io::Result<warren_pipe::PipeStream> {
        let (client, ours) = warren_pipe::pair(self.shared.config.memory_pipe_bytes_max);
        self.spawn(|shared, stop, permit| conn::run_memory(ours, shared, stop, permit))?;
        Ok(client)
    }
}

/// A handle that opens in-process connections to a node; cheap to clone,
/// usable from any thread. After the node's shutdown it refuses.
#[derive(Clone)]
pub struct InProcess(Arc<Conns>);

impl InProcess {
    /// A new connection: the application's end of a Unix socketpair whose
    /// other end the broker serves. Speak AMQP 0-9-1 on it from the
    /// protocol header on (no TCP, no port). Err when the node is shutting
    /// down or `connections_max` is reached.
    pub fn connect(&self) -> std::io::Result<std::os::unix::net::UnixStream> {
        self.0.connect_in_process()
    }

    /// A new connection without a socket: the application's end of an
    /// in-memory pipe (tokio `AsyncRead`/`AsyncWrite`), for clients that
    /// take any stream; faster than the socketpair (docs/benchmarks.md).
    /// Err as for `connect`.
    pub fn connect_memory(&self) -> std::io::Result<warren_pipe::PipeStream> {
        self.0.connect_memory()
    }
}

/// The addresses a node listens on (None: that listener is off).
#[derive(Debug, Clone, Copy, Default)]
pub struct Addrs {
    /// AMQP over TCP.
    pub amqp: Option<SocketAddr>,
    /// AMQPS (TLS).
    pub amqps: Option<SocketAddr>,
}

/// A running broker. Stop it with `shutdown`; dropping it instead aborts
/// the connection tasks and stops the sync thread after its last sync
/// (without waiting for it).
pub struct Node {
    /// The connection tasks and what they share.
    conns: Arc<Conns>,
    /// Tells connections (and the management API) to stop.
    stop_tx: watch::Sender<bool>,
    /// The accept loop of the TCP (and TLS) listeners, which owns them.
    accept: Option<JoinHandle<()>>,
    /// The periodic tick.
    ticker: JoinHandle<()>,
    /// The management API and Prometheus runtime (if either is on).
    management: BackgroundRuntime,
    /// The group-commit thread (with a data folder).
    sync_thread: Option<std::thread::JoinHandle<()>>,
    /// Connection writers' runtime (`writer_threads`).
    writer_rt: BackgroundRuntime,
    /// Where the listeners are bound.
    addrs: Addrs,
    /// Reloads the TLS certificate of every TLS listener on change.
    tls_watcher: Option<JoinHandle<()>>,
    /// Tells the dynamic shovels' supervisor to stop them.
    shovels_stop: watch::Sender<bool>,
    /// The dynamic shovels' supervisor (`shovels.rs`).
    shovels: Option<JoinHandle<()>>,
}

impl Node {
    /// Opens the store (recovering it), applies the bootstrap definitions,
    /// and starts the background work and the configured listeners. Must
    /// run inside a multi-threaded tokio runtime: connection readers run on
    /// it.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Node> {
        let (broker, syncer, counters) = open_broker(&config)?;
        // Socket writes on their own thread(s): a reader that wakes its
        // consumers' writers would otherwise run them on its own worker (tokio's
        // LIFO slot is not stolen), keeping the broker on one core.
        let writer_rt = BackgroundRuntime(match config.writer_threads {
            0 => None,
            n => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("warren-writer")
                    .enable_all()
                    .build()
                    .context("starting the writer runtime")?,
            ),
        });
        let writers = writer_rt
            .0
            .as_ref()
            .map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone());
        let disk_limit_bytes = disk::limit_bytes(
            config.disk_free_limit_bytes,
            config.disk_free_limit_relative,
            total_memory_bytes(),
        );
        tracing::info!(disk_limit_bytes, "free disk limit");
        let shared = Arc::new(Shared {
            writers,
            alarm: watch::channel(false).0,
            alarms: Mutex::new(disk::Alarms::default()),
            disk: disk::DiskWatch::new(config.data_dir.clone(), disk_limit_bytes, counters),
            core: Mutex::new(broker),
            config: config.clone(),
            sync: sync::SyncSignal::default(),
            auth_attempts: Arc::default(),
            shovels: Default::default(),
        });
        let sync_thread = syncer.map(|s| sync::spawn(shared.clone(), s));
        {
            // The first reading, before any client connects.
            let disk = shared.disk.check();
            let mut core = shared.core.lock();
            shared.update_alarms(&mut core, |a| a.disk = disk);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let conns = Arc::new(Conns {
            shared: shared.clone(),
            tasks: Mutex::new(JoinSet::new()),
            limit: Arc::new(Semaphore::new(config.connections_max)),
            stop: stop_rx.clone(),
            closed: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        });
        // From here on, an error return drops the node, whose `Drop` stops
        // the sync thread and the ticker.
        let mut node = Node {
            conns,
            stop_tx,
            accept: None,
            ticker: tokio::spawn(tick_loop(shared.clone())),
            management: BackgroundRuntime(None),
            sync_thread,
            writer_rt,
            addrs: Addrs::default(),
            tls_watcher: None,
            shovels_stop: watch::channel(false).0,
            shovels: None,
        };
        let amqp = if config.amqp_listener {
            let addr = SocketAddr::new(config.bind, config.port);
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = l.local_addr()?;
            tracing::info!("warren listening on {local} (amqp)");
            node.addrs.amqp = Some(local);
            Some(l)
        } else {
            None
        };
        // One holder (and one reload watcher) for every TLS listener: AMQPS
        // and the management and metrics HTTPS listeners.
        let https_wanted = config.management_tls_port != 0 || config.prometheus_tls_port != 0;
        let holder = match (&config.tls, config.tls_port) {
            (None, 0) => None,
            (None, _) => anyhow::bail!("tls_port is set but no TLS certificate and key are"),
            (Some(_), 0) if !https_wanted => None,
            (Some(settings), _) => {
                let holder = tls::TlsConfigHolder::load(settings.clone())
                    .context("loading the TLS certificate")?;
                node.tls_watcher = Some(holder.spawn_watcher("tls"));
                Some(holder)
            }
        };
        let mut report: Vec<mgmt::Listener> = node
            .addrs
            .amqp
            .map(|addr| mgmt::Listener {
                protocol: "amqp",
                addr,
            })
            .into_iter()
            .collect();
        let tls = match (config.tls_port, &holder) {
            (0, _) | (_, None) => None,
            (port, Some(holder)) => {
                let addr = SocketAddr::new(config.bind, port);
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                let local = l.local_addr()?;
                tracing::info!("warren listening on {local} (amqps)");
                node.addrs.amqps = Some(local);
                report.push(mgmt::Listener {
                    protocol: "amqp/ssl",
                    addr: local,
                });
                Some(TlsListener {
                    listener: l,
                    holder: holder.clone(),
                })
            }
        };
        node.management =
            BackgroundRuntime(start_management(&shared, report, holder.as_ref(), stop_rx)?);
        if amqp.is_some() || tls.is_some() {
            node.accept = Some(tokio::spawn(accept_loop(node.conns.clone(), amqp, tls)));
        }
        node.shovels = Some(tokio::spawn(crate::shovels::supervise(
            shared.clone(),
            node.in_process(),
            shared.shovels.clone(),
            node.shovels_stop.subscribe(),
        )));
        Ok(node)
    }

    /// Where the listeners are bound (port 0 in the config: the one picked).
    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// A new in-process connection (see `InProcess::connect`).
    pub fn connect_in_process(&self) -> std::io::Result<std::os::unix::net::UnixStream> {
        self.conns.connect_in_process()
    }

    /// A new in-memory in-process connection (see `InProcess::connect_memory`).
    pub fn connect_memory(&self) -> std::io::Result<warren_pipe::PipeStream> {
        self.conns.connect_memory()
    }

    /// A handle for opening in-process connections from elsewhere.
    pub fn in_process(&self) -> InProcess {
        InProcess(self.conns.clone())
    }

    /// Stops accepting, closes every client with 320 CONNECTION_FORCED,
    /// waits for them (at most `shutdown_timeout_ms`), then stops the sync
    /// thread after its last sync.
    pub async fn shutdown(mut self) {
        let conns = self.conns.clone();
        conns.closed.store(true, Ordering::Release);
        let accept = self.accept.take();
        if let Some(a) = accept {
            // Aborted at its await point; the listeners drop with it.
            a.abort();
            let _ = a.await;
        }
        tracing::info!(
            "shutting down: closing {} connections",
            conns.tasks.lock().len()
        );
        self.ticker.abort();
        if let Some(w) = self.tls_watcher.take() {
            w.abort();
        }
        // The shovels first, while their in-process connections still work.
        let _ = self.shovels_stop.send(true);
        if let Some(mut s) = self.shovels.take() {
            let limit = Duration::from_millis(conns.shared.config.shutdown_timeout_ms);
            if tokio::time::timeout(limit, &mut s).await.is_err() {
                s.abort();
            }
        }
        drop(std::mem::replace(
            &mut self.management,
            BackgroundRuntime(None),
        ));
        {
            let mut core = conns.shared.core.lock();
            core.close_all("broker forced connection closure with reason 'shutdown'");
            conns.shared.after_batch(&mut core);
        }
        let _ = self.stop_tx.send(true);
        let mut tasks = std::mem::take(&mut *conns.tasks.lock());
        let deadline = tokio::time::sleep(Duration::from_millis(
            conns.shared.config.shutdown_timeout_ms,
        ));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => { tasks.abort_all(); break; }
                next = tasks.join_next() => if next.is_none() { break },
            }
        }
        if let Some(t) = self.sync_thread.take() {
            conns.shared.sync.stop();
            let _ = t.join();
        }
        drop(std::mem::replace(
            &mut self.writer_rt,
            BackgroundRuntime(None),
        ));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Only without `shutdown` (which leaves nothing here to stop).
        self.conns.closed.store(true, Ordering::Release);
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        self.ticker.abort();
        if let Some(w) = self.tls_watcher.take() {
            w.abort();
        }
        if let Some(s) = self.shovels.take() {
            s.abort();
        }
        self.conns.tasks.lock().abort_all();
        if self.sync_thread.take().is_some() {
            self.conns.shared.sync.stop();
        }
    }
}

/// The AMQPS listener and its certificate.
struct TlsListener {
    /// The bound socket.
    listener: TcpListener,
    /// The current certificate configuration (shared with the HTTPS listeners).
    holder: Arc<tls::TlsConfigHolder>,
}

/// The store opened and recovered into a new core (with a data folder), or
/// an in-memory core; the bootstrap definitions applied and synced.
#[allow(clippy::type_complexity)]
fn open_broker(
    config: &ServerConfig,
) -> anyhow::Result<(Broker, Option<Arc<store::FileSyncer>>, disk::WriteCounters)> {
    let mut counters = disk::WriteCounters::default();
    let arena: Box<dyn broker_core::arena::Arena> = match &config.data_dir {
        Some(dir) => {
            let arena = store::FileArena::open(&dir.join("arena"), config.arena_segment_size_bytes)
                .map_err(|e| anyhow::anyhow!("opening message arena: {e}"))?;
            counters.arena = Some(arena.reserved_bytes_counter());
            Box::new(arena)
        }
        None => Box::new(broker_core::arena::MemArena::new(
            config.arena_segment_size_bytes,
        )),
    };
    let mut broker = Broker::new(
        config.core.clone(),
        Box::new(NoPersistence::default()),
        arena,
    );
    let mut syncer: Option<Arc<store::FileSyncer>> = None;
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        let started = std::time::Instant::now();
        // The store streams what it recovers straight into the broker.
        let mut restorer = broker.restorer();
        let store_config = store::StoreConfig {
            reserve_bytes: config.store_reserve_bytes,
            ..store::StoreConfig::default()
        };
        let mut progress = crate::recovery_progress::Progress::new(&mut restorer);
        let (store, store_syncer, warnings) = store::open_into(dir, store_config, &mut progress)
            .map_err(|e| anyhow::anyhow!("opening store in {}: {e}", dir.display()))?;
        let stats = restorer.finish();
        // Recovery grows and drops large vectors: hand the freed heap back
        // to the OS instead of keeping it as RSS for the broker's life.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free heap pages; no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        for w in &warnings {
            tracing::warn!("recovery: {w}");
        }
        broker.set_persistence(Box::new(store));
        counters.store = Some(store_syncer.clone());
        syncer = Some(store_syncer);
        tracing::info!(
            queues = stats.queues,
            messages = stats.messages,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered durable state"
        );
    }
    broker.set_loopback_users(config.loopback_users.clone());
    if let Some(path) = &config.definitions {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading definitions {}", path.display()))?;
        crate::bootstrap::apply(&mut broker, &text)
            .with_context(|| format!("in definitions {}", path.display()))?;
    }
    if let Some(s) = &syncer {
        // What the bootstrap (or the first start's defaults) recorded is
        // on disk before the first client connects.
        broker_core::persist::Syncer::sync(&**s)
            .map_err(|e| anyhow::anyhow!("syncing the store: {e}"))?;
    }
    Ok((broker, syncer, counters))
}

/// The periodic tick: expiry, delayed messages, store maintenance, and the
/// resource checks (free disk, RSS against the memory watermark).
async fn tick_loop(shared: Arc<Shared>) {
    let period = Duration::from_millis(shared.config.tick_interval_ms.max(1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let memory_limit_bytes = memory_limit_bytes(&shared.config);
    tracing::info!(memory_limit_bytes, "memory high watermark");
    let disk_every =
        (shared.config.disk_check_interval_ms / period.as_millis().max(1) as u64).max(1);
    let mut n: u64 = 0;
    loop {
        // Wake early for a delayed message due before the next tick
        // (a delay published meanwhile waits at most one tick).
        let due_in = shared
            .core
            .lock()
            .next_delayed_due_ms()
            .map(|due| due.saturating_sub(broker_core::delayed::wall_ms()))
            .map(Duration::from_millis)
            .filter(|d| *d < period);
        if let Some(d) = due_in {
            tokio::select! {
                _ = interval.tick() => {}
                _ = tokio::time::sleep(d) => {
                    let mut core = shared.core.lock();
                    core.fire_due_delayed();
                    shared.after_batch(&mut core);
                    continue;
                }
            }
        } else {
            interval.tick().await;
        }
        n += 1;
        // Resource checks: free disk about once a second, or sooner
        // when enough was written to use up half the margin (see
        // disk.rs); RSS against the memory watermark once a second.
        let periodic = n.is_multiple_of(disk_every);
        let disk = (periodic || shared.disk.due()).then(|| shared.disk.check());
        let mem = periodic.then(|| memory_alarm(memory_limit_bytes));
        let mut core = shared.core.lock();
        core.tick();
        core.maintain_store();
        if disk.is_some() || mem.is_some() {
            shared.update_alarms(&mut core, |a| {
                if let Some(d) = disk {
                    a.disk = d;
                }
                if let Some(m) = mem {
                    a.memory = m;
                }
            });
        }
        shared.after_batch(&mut core);
    }
}

/// The next connection on the TLS listener (never, without one); None
/// after an accept error (logged, after a back-off).
async fn accept_tls(
    tls: Option<&TlsListener>,
) -> Option<(
    (tokio::net::TcpStream, SocketAddr),
    &Arc<tls::TlsConfigHolder>,
)> {
    let Some(t) = tls else {
        return std::future::pending().await;
    };
    match t.listener.accept().await {
        Ok(a) => Some((a, &t.holder)),
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// The next connection on the AMQP listener (never, without one).
async fn accept_plain(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts on the TCP and TLS listeners until aborted (at shutdown).
async fn accept_loop(conns: Arc<Conns>, amqp: Option<TcpListener>, tls: Option<TlsListener>) {
    loop {
        tokio::select! {
            accepted = accept_tls(tls.as_ref()) => {
                let Some(((stream, peer), holder)) = accepted else { continue };
                let config = holder.current();
                let login_from = holder.settings().cert_login_from;
                let spawned = conns.spawn(|shared, stop, permit| {
                    conn::run_tls(stream, peer, shared, stop, permit, config, login_from)
                });
                if let Err(e) = spawned {
                    tracing::warn!(%peer, "{e}; refusing");
                }
            }
            accepted = accept_plain(amqp.as_ref()) => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let spawned =
                    conns.spawn(|shared, stop, permit| conn::run(stream, peer, shared, stop, permit));
                if let Err(e) = spawned {
                    tracing::warn!(%peer, "{e}; refusing");
                }
            }
        }
    }
}
