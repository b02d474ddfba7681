//! # Topics: routing on patterns
//!
//! The fifth RabbitMQ tutorial. A `topic` exchange routes on routing keys made of dot-separated
//! words (`<facility>.<severity>` here) against binding patterns where `*` stands for exactly one
//! word and `#` for zero or more words. One queue wants every critical line (`*.critical`),
//! another everything from the kernel (`kern.#`); a line matching both is delivered to both, once
//! each. Lines nobody wants are published without `mandatory` (`Message::not_mandatory`): the
//! broker drops them, as a topic exchange with no match does.
//!
//! Run: `cargo run -p service-kit --example topics` (embedded broker) or with `AMQP_URL=...`.
//! It checks which keys reached each queue.

use std::collections::BTreeSet;

use anyhow::ensure;
use service_kit::{ConsumerConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, Topology};
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

pub async fn run(url: String) -> anyhow::Result<String> {
    let exchange = common::unique("topic_logs");
    let critical = common::unique("logs.critical");
    let kernel = common::unique("logs.kernel");
    let topology = Topology::new()
        .exchange(&exchange, "topic")
        .queue(&critical)
        .bind(&critical, &exchange, "*.critical")
        .queue(&kernel)
        .bind(&kernel, &exchange, "kern.#");
    let kit = Kit::start(KitConfig::new(&url), topology);

    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let mut handles = Vec::new();
    for q in [&critical, &kernel] {
        let (tx, name) = (tx.clone(), q.clone());
        let h = kit
            .consume(ConsumerConfig::new(q), move |d| {
                let _ = tx.send((name.clone(), d.routing_key.clone()));
                async { Outcome::Ack }
            })
            .await;
        handles.push(h);
    }

    let publisher = kit.publisher(PublisherConfig::default());
    let keys = [
        "kern.critical",     // both queues
        "kern.info",         // kernel
        "kern.disk.warning", // kernel: `#` matches several words
        "cron.critical",     // critical
        "cron.info",         // nobody
        "kern",              // kernel: `#` matches zero words
    ];
    for key in keys {
        let line = Message::new(&exchange, key, format!("{key}: a log line")).not_mandatory();
        publisher.publish(line).await?;
    }

    let (mut to_critical, mut to_kernel) = (BTreeSet::new(), BTreeSet::new());
    while to_critical.len() + to_kernel.len() < 2 + 4 {
        let Ok(Some((q, key))) = tokio::time::timeout(common::WAIT, rx.recv()).await else {
            break;
        };
        let set = if q == critical {
            &mut to_critical
        } else {
            &mut to_kernel
        };
        ensure!(set.insert(key.clone()), "{key} reached {q} twice");
    }
    for h in handles {
        h.shutdown().await;
    }
    kit.shutdown().await;
    common::delete(&url, &[&critical, &kernel], &[&exchange]).await;

    let want_critical: BTreeSet<String> =
        ["kern.critical", "cron.critical"].map(String::from).into();
    let want_kernel: BTreeSet<String> = ["kern", "kern.critical", "kern.disk.warning", "kern.info"]
        .map(String::from)
        .into();
    ensure!(
        to_critical == want_critical,
        "*.critical got {to_critical:?}"
    );
    ensure!(to_kernel == want_kernel, "kern.# got {to_kernel:?}");
    Ok(format!(
        "*.critical ← {to_critical:?}; kern.# ← {to_kernel:?}; cron.info dropped"
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
