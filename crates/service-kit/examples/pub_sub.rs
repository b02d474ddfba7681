//! # Publish/subscribe: one message to many consumers
//!
//! The third RabbitMQ tutorial. The producer publishes to a `fanout` exchange, never to a queue:
//! the exchange copies each message into every queue bound to it, so each subscriber gets its own
//! copy (here a "screen" logger and a "disk" logger both see every log line). With the kit:
//!
//! - the exchange, one queue per subscriber and the bindings are the [`Topology`], declared again
//!   on every reconnect, so a subscriber whose broker restarted is bound again;
//! - the publish is `mandatory`: were no queue bound, `publish` would fail with
//!   `KitError::Returned` (312 NO_ROUTE) instead of the message vanishing.
//!
//! Run: `cargo run -p service-kit --example pub_sub` (embedded broker) or with `AMQP_URL=...`.
//! It checks that both subscribers received every message, in order.

use anyhow::ensure;
use service_kit::{ConsumerConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, Topology};
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

/// Log lines published.
const LINES: usize = 5;

pub async fn run(url: String) -> anyhow::Result<String> {
    let exchange = common::unique("logs");
    let subscribers = [common::unique("logs.screen"), common::unique("logs.disk")];
    let mut topology = Topology::new().exchange(&exchange, "fanout");
    for q in &subscribers {
        topology = topology.queue(q).bind(q, &exchange, "");
    }
    let kit = Kit::start(KitConfig::new(&url), topology);

    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let mut handles = Vec::new();
    for q in &subscribers {
        let (tx, name) = (tx.clone(), q.clone());
        let mut cfg = ConsumerConfig::new(q);
        cfg.concurrency = 1; // one handler at a time: lines are handled in the order they came
        let handle = kit
            .consume(cfg, move |d| {
                let _ = tx.send((name.clone(), d.text()));
                async { Outcome::Ack }
            })
            .await;
        handles.push(handle);
    }

    let publisher = kit.publisher(PublisherConfig::default());
    for i in 0..LINES {
        // Routing key "" — a fanout exchange ignores it.
        publisher
            .publish(Message::new(&exchange, "", format!("log line {i}")))
            .await?;
    }

    let mut got: Vec<Vec<String>> = vec![Vec::new(); subscribers.len()];
    while got.iter().map(Vec::len).sum::<usize>() < LINES * subscribers.len() {
        let Ok(Some((q, line))) = tokio::time::timeout(common::WAIT, rx.recv()).await else {
            break;
        };
        if let Some(i) = subscribers.iter().position(|s| *s == q) {
            got[i].push(line);
        }
    }
    for h in handles {
        h.shutdown().await;
    }
    kit.shutdown().await;
    let queues: Vec<&str> = subscribers.iter().map(String::as_str).collect();
    common::delete(&url, &queues, &[&exchange]).await;

    let want: Vec<String> = (0..LINES).map(|i| format!("log line {i}")).collect();
    for (q, lines) in subscribers.iter().zip(&got) {
        ensure!(*lines == want, "{q} received {lines:?}");
    }
    Ok(format!(
        "{LINES} lines reached each of {} subscribers, in order",
        subscribers.len()
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
