//! # Routing: receiving messages selectively
//!
//! The fourth RabbitMQ tutorial. A `direct` exchange delivers a message to the queues whose
//! binding key equals the message's routing key. Here log lines are routed by severity: one
//! queue is bound with `error` only (errors go to disk), another with `info`, `warning` and
//! `error` (everything goes to the screen). A queue may have several bindings, and several queues
//! may share one key. With the kit:
//!
//! - the bindings are part of the [`Topology`] (declared again on every reconnect);
//! - a severity nobody bound (`debug`) is unroutable: the kit publishes `mandatory` by default,
//!   so `publish` fails with `KitError::Returned { code: 312, .. }` (NO_ROUTE) rather than the
//!   broker dropping the line silently.
//!
//! Run: `cargo run -p service-kit --example routing` (embedded broker) or with `AMQP_URL=...`.
//! It checks which queue got which lines and that the `debug` line came back as NO_ROUTE.

use anyhow::ensure;
use service_kit::{
    ConsumerConfig, Kit, KitConfig, KitError, Message, Outcome, PublisherConfig, Topology,
};
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

pub async fn run(url: String) -> anyhow::Result<String> {
    let exchange = common::unique("direct_logs");
    let errors = common::unique("logs.errors");
    let all = common::unique("logs.all");
    let topology = Topology::new()
        .exchange(&exchange, "direct")
        .queue(&errors)
        .bind(&errors, &exchange, "error")
        .queue(&all)
        .bind(&all, &exchange, "info")
        .bind(&all, &exchange, "warning")
        .bind(&all, &exchange, "error");
    let kit = Kit::start(KitConfig::new(&url), topology);

    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let mut handles = Vec::new();
    for q in [&errors, &all] {
        let (tx, name) = (tx.clone(), q.clone());
        let mut cfg = ConsumerConfig::new(q);
        cfg.concurrency = 1;
        let h = kit
            .consume(cfg, move |d| {
                let _ = tx.send((name.clone(), d.routing_key.clone()));
                async { Outcome::Ack }
            })
            .await;
        handles.push(h);
    }

    let publisher = kit.publisher(PublisherConfig::default());
    for severity in ["info", "warning", "error", "info", "error"] {
        let line = format!("[{severity}] something happened");
        publisher
            .publish(Message::new(&exchange, severity, line))
            .await?;
    }
    let debug = publisher
        .publish(Message::new(&exchange, "debug", "[debug] nobody listens"))
        .await;

    let (mut to_errors, mut to_all) = (Vec::new(), Vec::new());
    while to_errors.len() + to_all.len() < 2 + 5 {
        let Ok(Some((q, key))) = tokio::time::timeout(common::WAIT, rx.recv()).await else {
            break;
        };
        if q == errors {
            to_errors.push(key);
        } else {
            to_all.push(key);
        }
    }
    for h in handles {
        h.shutdown().await;
    }
    kit.shutdown().await;
    common::delete(&url, &[&errors, &all], &[&exchange]).await;

    ensure!(
        to_errors == ["error", "error"],
        "errors queue got {to_errors:?}"
    );
    ensure!(
        to_all == ["info", "warning", "error", "info", "error"],
        "all queue got {to_all:?}"
    );
    ensure!(
        matches!(debug, Err(KitError::Returned { code: 312, .. })),
        "an unbound severity is returned as NO_ROUTE, got {debug:?}"
    );
    Ok("errors → 2 lines, all → 5 lines, debug → 312 NO_ROUTE".into())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
