//! A shovel: moves the messages of a source queue to a destination
//! exchange (usually on another broker), at least once. With
//! [`AckMode::OnConfirm`] (the default, RabbitMQ's `on-confirm`) each
//! message is published to the destination in confirm mode and acked on
//! the source only after the destination confirmed it; a nack requeues it
//! on the source. Any error (either side down, refused, closed) drops both
//! connections — the source requeues what was unacked (redelivered) — and
//! reconnects after `reconnect_delay`. Forwarded copies of a source
//! redelivery (possibly a duplicate at the destination) carry the header
//! `x-shovel-redelivered = true`.
//!
//! How each end is reached is the caller's [`Connector`]: plain lapin over
//! TCP by default ([`tcp_connector`]); the server's dynamic shovels reach
//! their own node in-process, warren-embedded reaches `warren-embedded://`
//! brokers in-process ([`inproc::connect_stream`]).
//!
//! Used by the server's dynamic shovels (`/api/parameters/shovel/...`) and
//! by `warren-embedded`; depends on lapin only, so neither depends on the
//! other.

pub mod inproc;
mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// When the source message is acked (RabbitMQ's `ack-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// After the destination confirmed it (`on-confirm`): at least once.
    #[default]
    OnConfirm,
    /// As soon as it was published to the destination (`on-publish`): a
    /// destination failure can lose what was in flight.
    OnPublish,
    /// Consumed with no-ack (`no-ack`): fastest, loses what was in flight
    /// on any failure.
    NoAck,
}

/// What to move where.
#[derive(Debug, Clone)]
pub struct ShovelConfig {
    /// Name (in logs and connection names).
    pub name: String,
    /// The source broker.
    pub src_url: String,
    /// The queue to drain (it must exist; the shovel declares nothing).
    pub src_queue: String,
    /// The destination broker.
    pub dest_url: String,
    /// The exchange to publish to (`""`: the default exchange).
    pub dest_exchange: String,
    /// Routing key for the copies (None: each message's own).
    pub dest_routing_key: Option<String>,
    /// Messages forwarded but not yet settled on the source (the source
    /// consumer's prefetch; RabbitMQ's `src-prefetch-count`).
    pub window_messages: u16,
    /// Wait between reconnect attempts.
    pub reconnect_delay: Duration,
    /// When the source message is acked.
    pub ack_mode: AckMode,
    /// With `Some`, each copy gets one more entry (a table of these
    /// key/value strings) at the front of its `x-shovelled` array header
    /// (RabbitMQ's `add-forward-headers`).
    pub forward_headers: Option<Vec<(String, String)>>,
}

impl ShovelConfig {
    /// A shovel from `src_queue` at `src_url` to `dest_exchange` at
    /// `dest_url`: own routing keys, a window of 100, 1 s reconnect delay,
    /// acks on confirm, no forward headers.
    pub fn new(
        src_url: &str,
        src_queue: &str,
        dest_url: &str,
        dest_exchange: &str,
    ) -> ShovelConfig {
        ShovelConfig {
            name: format!("shovel-{src_queue}"),
            src_url: src_url.into(),
            src_queue: src_queue.into(),
            dest_url: dest_url.into(),
            dest_exchange: dest_exchange.into(),
            dest_routing_key: None,
            window_messages: 100,
            reconnect_delay: Duration::from_secs(1),
            ack_mode: AckMode::OnConfirm,
            forward_headers: None,
        }
    }
}

/// A future returning a lapin connection.
pub type Connecting = Pin<Box<dyn Future<Output = lapin::Result<Connection>> + Send>>;

/// Opens a connection to a URL (the shovel's source or destination).
pub type Connector = Arc<dyn Fn(&str, ConnectionProperties) -> Connecting + Send + Sync>;

/// lapin's own `Connection::connect` (TCP or TLS by the URL).
pub fn tcp_connector() -> Connector {
    Arc::new(|url: &str, props: ConnectionProperties| {
        let url = url.to_string();
        Box::pin(async move { Connection::connect(&url, props).await })
    })
}

/// RabbitMQ's shovel states (`/api/shovels`'s `state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connecting to both ends.
    Starting,
    /// Consuming from the source.
    Running,
    /// Failed (the reason); waiting `reconnect_delay` before starting again.
    Terminated(String),
}

/// A state and since when.
#[derive(Debug, Clone)]
pub struct Status {
    /// The state.
    pub state: State,
    /// When it was entered.
    pub since: SystemTime,
}

impl Status {
    fn now(state: State) -> Status {
        Status {
            state,
            since: SystemTime::now(),
        }
    }
}

/// A running shovel; `stop` ends it (unconfirmed messages stay on the
/// source and are redelivered to the next consumer). Dropping it aborts
/// its task.
pub struct Shovel {
    /// Tells the task to stop.
    stop: watch::Sender<bool>,
    /// The task.
    task: JoinHandle<()>,
    /// Messages confirmed by the destination and acked on the source.
    moved: watch::Receiver<u64>,
    /// The current state.
    status: watch::Receiver<Status>,
}

impl Shovel {
    /// Starts the shovel on the current tokio runtime, reaching both ends
    /// over TCP ([`tcp_connector`]).
    pub fn start(cfg: ShovelConfig) -> Shovel {
        Shovel::start_with(cfg, tcp_connector())
    }

    /// Starts the shovel on the current tokio runtime, reaching both ends
    /// through `connect`.
    pub fn start_with(cfg: ShovelConfig, connect: Connector) -> Shovel {
        let (stop, stop_rx) = watch::channel(false);
        let (moved_tx, moved) = watch::channel(0u64);
        let (status_tx, status) = watch::channel(Status::now(State::Starting));
        let ends = session::Ends {
            cfg,
            connect,
            moved: moved_tx,
            status: status_tx,
        };
        let task = tokio::spawn(run(ends, stop_rx));
        Shovel {
            stop,
            task,
            moved,
            status,
        }
    }

    /// Messages moved so far (settled on the source after forwarding).
    pub fn moved(&self) -> u64 {
        *self.moved.borrow()
    }

    /// The current state.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Stops the shovel and waits for it (it closes both connections).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for Shovel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(ends: session::Ends, mut stop: watch::Receiver<bool>) {
    loop {
        ends.status.send_replace(Status::now(State::Starting));
        // The session watches `stop` itself, to close both connections.
        let result = session::session(&ends, &mut stop).await;
        if *stop.borrow() {
            return;
        }
        let reason = match result {
            Ok(()) => "source consumer cancelled".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(shovel = %ends.cfg.name, "shovel interrupted, reconnecting: {reason}");
        ends.status
            .send_replace(Status::now(State::Terminated(reason)));
        tokio::select! {
            _ = tokio::time::sleep(ends.cfg.reconnect_delay) => {}
            _ = stop.changed() => return,
        }
    }
}
