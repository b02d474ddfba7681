//! A shovel: moves the messages of a source queue to a destination
//! exchange (usually on another broker), at least once. Each message is
//! published to the destination in confirm mode and acked on the source
//! only after the destination confirmed it; a nack requeues it on the
//! source. Any error (either side down, refused, closed) drops both
//! connections — the source requeues what was unacked (redelivered) — and
//! reconnects after a backoff. Forwarded copies of a source redelivery
//! (possibly a duplicate at the destination) carry the header
//! `x-shovel-redelivered = true`.
//!
//! Either end is a URL: `amqp://` / `amqps://` over TCP, or
//! `warren-embedded://NAME` in-process, so an application can accept work
//! durably on its own disk (an embedded broker with a data folder) and
//! forward it to a central broker whenever that is reachable.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

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
    /// Messages forwarded but not yet confirmed by the destination (the
    /// source consumer's prefetch).
    pub window_messages: u16,
    /// Wait between reconnect attempts.
    pub reconnect_delay: Duration,
}

impl ShovelConfig {
    /// A shovel from `src_queue` at `src_url` to `dest_exchange` at
    /// `dest_url`: own routing keys, a window of 100, 1 s reconnect delay.
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
        }
    }
}

/// A running shovel; `stop` ends it (unconfirmed messages stay on the
/// source and are redelivered to the next consumer).
pub struct Shovel {
    /// Tells the task to stop.
    stop: watch::Sender<bool>,
    /// The task.
    task: JoinHandle<()>,
    /// Messages confirmed by the destination and acked on the source.
    moved: watch::Receiver<u64>,
}

impl Shovel {
    /// Starts the shovel on the current tokio runtime.
    pub fn start(cfg: ShovelConfig) -> Shovel {
        let (stop, stop_rx) = watch::channel(false);
        let (moved_tx, moved) = watch::channel(0u64);
        let task = tokio::spawn(run(cfg, stop_rx, moved_tx));
        Shovel { stop, task, moved }
    }

    /// Messages moved so far (confirmed at the destination, acked at the source).
    pub fn moved(&self) -> u64 {
        *self.moved.borrow()
    }

    /// Stops the shovel and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Connects to `url`: in-process for `warren-embedded://`, else over TCP.
pub async fn connect_any(url: &str, props: ConnectionProperties) -> lapin::Result<Connection> {
    if url.starts_with(crate::SCHEME) {
        crate::connect_url(url, props).await
    } else {
        Connection::connect(url, props).await
    }
}

async fn run(cfg: ShovelConfig, mut stop: watch::Receiver<bool>, moved: watch::Sender<u64>) {
    loop {
        let result = tokio::select! {
            r = session(&cfg, &moved) => r,
            _ = stop.changed() => return,
        };
        if let Err(e) = result {
            tracing::warn!(shovel = %cfg.name, "shovel interrupted, reconnecting: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.reconnect_delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One connection pair: forwards until something fails.
async fn session(cfg: &ShovelConfig, moved: &watch::Sender<u64>) -> lapin::Result<()> {
    let props = |end: &str| {
        ConnectionProperties::default().with_connection_name(format!("{}.{end}", cfg.name).into())
    };
    let dest = connect_any(&cfg.dest_url, props("dest")).await?;
    let src = connect_any(&cfg.src_url, props("src")).await?;
    let dch = dest.create_channel().await?;
    dch.confirm_select(ConfirmSelectOptions::default()).await?;
    let sch = src.create_channel().await?;
    sch.basic_qos(cfg.window_messages.max(1), BasicQosOptions::default())
        .await?;
    let mut deliveries = sch
        .basic_consume(
            &cfg.src_queue,
            &cfg.name,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(shovel = %cfg.name, "shovel running");
    // Confirms are awaited in order by a second task, which acks (or, on a
    // nack, requeues) on the source; the source's prefetch bounds it.
    let (tx, mut rx) = mpsc::channel::<(
        lapin::acker::Acker,
        lapin::publisher_confirm::PublisherConfirm,
    )>(usize::from(cfg.window_messages.max(1)));
    let settle = async {
        while let Some((acker, confirm)) = rx.recv().await {
            if confirm.await?.is_ack() {
                acker.ack(BasicAckOptions::default()).await?;
                moved.send_modify(|n| *n += 1);
            } else {
                acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await?;
            }
        }
        Ok::<(), lapin::Error>(())
    };
    let forward = async {
        while let Some(d) = deliveries.next().await {
            let d = d?;
            let mut properties = d.properties.clone();
            if d.redelivered {
                let mut headers = properties.headers().clone().unwrap_or_default();
                headers.insert("x-shovel-redelivered".into(), AMQPValue::Boolean(true));
                properties = properties.with_headers(headers);
            }
            let key = cfg
                .dest_routing_key
                .as_deref()
                .unwrap_or(d.routing_key.as_str());
            let confirm = dch
                .basic_publish(
                    &cfg.dest_exchange,
                    key,
                    BasicPublishOptions::default(),
                    &d.data,
                    properties,
                )
                .await?;
            if tx.send((d.acker, confirm)).await.is_err() {
                break;
            }
        }
        Err::<(), lapin::Error>(lapin::Error::InvalidConnectionState(
            lapin::ConnectionState::Closed,
        ))
    };
    let r = tokio::select! {
        r = settle => r,
        r = forward => r,
    };
    let _ = src.close(200, "shovel restarting").await;
    let _ = dest.close(200, "shovel restarting").await;
    r
}
