//! # Idempotent consumer: every message processed once, even when delivered twice
//!
//! Brokers deliver *at least once*: a publisher that lost its connection before the confirm
//! publishes again, a worker that crashed after doing the work but before its ack gets the
//! message again. A consumer whose work must not happen twice (charge a card, send an email)
//! remembers which message ids it has processed. With the kit that is an [`Inbox`]: a file on
//! local disk (no database) of processed ids, written and fsynced *before* the ack, bounded by
//! count and age. A delivery whose id is in the inbox is acked without calling the handler and
//! counted in `metrics().duplicates`. Give messages ids that mean something to the business
//! (an order number, an HTTP `Idempotency-Key`): the kit's default id is unique per publish.
//!
//! Run: `cargo run -p service-kit --example idempotent_consumer` (embedded broker) or with
//! `AMQP_URL=...`. It publishes order-1 twice and order-2 once, restarts the worker (a new
//! inbox opened from the same file), publishes order-1 a third time, and checks that each
//! order was charged exactly once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;
use service_kit::{
    ConsumerConfig, Inbox, InboxConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, Topology,
};

#[path = "common/mod.rs"]
mod common;

/// Waits until the kit has settled `n` deliveries (processed or recognised as duplicates).
async fn settled(kit: &Kit, n: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    while kit.metrics().acked.get() + kit.metrics().duplicates.get() < n {
        ensure!(
            start.elapsed() < common::WAIT,
            "only {} settled",
            kit.metrics().acked.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn run(url: String) -> anyhow::Result<String> {
    let queue = common::unique("orders");
    let inbox_path = std::env::temp_dir().join(format!("{queue}.inbox"));
    let kit = Kit::start(KitConfig::new(&url), Topology::new().queue(&queue));
    let publisher = kit.publisher(PublisherConfig::default());
    let charged = Arc::new(Mutex::new(Vec::<String>::new()));

    let mut published = 0;
    for (worker_run, orders) in [["order-1", "order-1", "order-2"].as_slice(), &["order-1"]]
        .into_iter()
        .enumerate()
    {
        // A worker: its inbox is opened from the file each time it starts.
        let inbox = Inbox::open(InboxConfig {
            path: inbox_path.clone(),
            max_ids: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        })?;
        let mut cfg = ConsumerConfig::new(&queue);
        cfg.inbox = Some(Arc::new(inbox));
        let c = charged.clone();
        let worker = kit
            .consume(cfg, move |order| {
                if let Ok(mut c) = c.lock() {
                    c.push(order.message_id().unwrap_or_default().to_owned());
                }
                async { Outcome::Ack }
            })
            .await;
        for id in orders {
            let body = format!("{{\"order\":\"{id}\",\"run\":{worker_run}}}");
            publisher
                .publish(Message::new("", &queue, body).with_id(id))
                .await?;
            published += 1;
        }
        settled(&kit, published).await?;
        worker.shutdown().await; // a worker restart
    }
    let duplicates = kit.metrics().duplicates.get();
    kit.shutdown().await;
    common::delete(&url, &[&queue], &[]).await;
    let _ = std::fs::remove_file(&inbox_path);

    let mut charged = charged.lock().map(|c| c.clone()).unwrap_or_default();
    charged.sort();
    ensure!(charged == ["order-1", "order-2"], "charged {charged:?}");
    ensure!(
        duplicates == 2,
        "2 duplicates of order-1 recognised, got {duplicates}"
    );
    Ok(format!(
        "{published} deliveries, charged {charged:?} once each, {duplicates} duplicates acked unprocessed"
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
