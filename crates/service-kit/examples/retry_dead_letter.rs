//! # Retries with backoff, then the dead-letter queue
//!
//! Not every failure is final. A handler tells the kit what happened with its [`Outcome`]:
//!
//! - `Outcome::Retry(error)`: a transient failure (a timeout, a 503 from a dependency). The kit
//!   acks the delivery and publishes a copy that comes back after the policy's next delay, with
//!   the attempt number in `x-attempts`; after `max_attempts` the copy goes to the dead-letter
//!   queue `<queue>.dlq` instead;
//! - `Outcome::Poison(error)`: the message can never succeed (it does not parse): straight to
//!   the dead-letter queue, no retries;
//! - `Outcome::Ack` when done, `Outcome::Requeue` for "not now" (not counted as a failure).
//!
//! The delay travels through the broker, so a restarted worker loses nothing: on warren (and on
//! RabbitMQ with the delayed-message plugin) through an `x-delayed-message` exchange; on a
//! RabbitMQ without it through a ladder of wait queues whose `x-message-ttl` dead-letters the
//! copy back to the work queue. `RetryMode::Auto` (the default) detects which one the broker
//! has. Dead-lettered messages keep their message id and carry `x-attempts`, `x-first-failure`
//! (Unix ms) and `x-last-error`, for whoever inspects or replays the DLQ. (For very short
//! glitches `RetryPolicy::in_process_retries` re-runs the handler in place first.)
//!
//! Run: `cargo run -p service-kit --example retry_dead_letter` (embedded broker) or with
//! `AMQP_URL=...` (RabbitMQ 3.10 without the plugin takes the TTL ladder). It checks that a
//! flaky payment succeeds on its third attempt after the delays, that a payment failing every
//! time and a malformed one are in the DLQ with their headers, and nothing else is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use lapin::options::BasicGetOptions;
use service_kit::message::{header_str, header_u64};
use service_kit::retry::{self, ATTEMPTS_HEADER, FIRST_FAILURE_HEADER, LAST_ERROR_HEADER};
use service_kit::{
    ConsumerConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, RetryMode, Topology,
};

#[path = "common/mod.rs"]
mod common;

/// Delays before attempts 2 and 3.
const DELAYS_MS: [u64; 2] = [200, 400];

pub async fn run(url: String) -> anyhow::Result<String> {
    let queue = common::unique("payments");
    let kit = Kit::start(KitConfig::new(&url), Topology::new().queue(&queue));
    let mode = kit.resolve_retry_mode(RetryMode::Auto).await;

    let mut cfg = ConsumerConfig::new(&queue);
    cfg.retry.max_attempts = 3;
    cfg.retry.delays = DELAYS_MS.map(Duration::from_millis).to_vec();

    // When each message was tried, by message id.
    let tries = Arc::new(Mutex::new(BTreeMap::<String, Vec<(u32, Instant)>>::new()));
    let t = tries.clone();
    let handle = kit
        .consume(cfg, move |d| {
            let id = d.message_id().unwrap_or_default().to_owned();
            if let Ok(mut t) = t.lock() {
                t.entry(id.clone())
                    .or_default()
                    .push((d.attempt, Instant::now()));
            }
            let outcome = match d.text().as_str() {
                "not json" => Outcome::Poison("expected a JSON payment".into()),
                _ if id == "pay-flaky" && d.attempt < 3 => Outcome::Retry("bank timed out".into()),
                _ if id == "pay-down" => {
                    Outcome::Retry(format!("bank down (attempt {})", d.attempt))
                }
                _ => Outcome::Ack,
            };
            async move { outcome }
        })
        .await;

    let publisher = kit.publisher(PublisherConfig::default());
    for (id, body) in [
        ("pay-flaky", "{\"eur\":10}"),
        ("pay-down", "{\"eur\":20}"),
        ("pay-bad", "not json"),
    ] {
        publisher
            .publish(Message::new("", &queue, body).with_id(id))
            .await?;
    }

    // Peek into the dead-letter queue as an operator would, until the two failures are there.
    let dlq = retry::dlq_name(&queue);
    let conn = warren_embedded::shovel::connect_any(&url, Default::default()).await?;
    let ch = conn.create_channel().await?;
    let mut dead = BTreeMap::new();
    let start = Instant::now();
    while dead.len() < 2 && start.elapsed() < common::WAIT {
        match ch.basic_get(&dlq, BasicGetOptions { no_ack: true }).await? {
            Some(m) => {
                let p = m.delivery.properties.clone();
                let id = p
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                dead.insert(id, p.headers().clone().unwrap_or_default());
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // Give a wrong extra copy the time to show up before checking.
    tokio::time::sleep(Duration::from_millis(DELAYS_MS[1])).await;
    let extra = ch.basic_get(&dlq, BasicGetOptions { no_ack: true }).await?;
    let _ = conn.close(200, "done").await;
    handle.shutdown().await;
    let acked = kit.metrics().acked.get();
    kit.shutdown().await;
    let ladder: Vec<String> = DELAYS_MS
        .iter()
        .map(|ms| retry::ladder_queue(&queue, Duration::from_millis(*ms)))
        .collect();
    let mut queues = vec![queue.as_str(), dlq.as_str()];
    queues.extend(ladder.iter().map(String::as_str));
    common::delete(&url, &queues, &[]).await;

    let tries = tries.lock().map(|t| t.clone()).unwrap_or_default();
    let flaky = tries.get("pay-flaky").context("pay-flaky never handled")?;
    ensure!(
        flaky.iter().map(|t| t.0).eq([1, 2, 3]),
        "pay-flaky attempts {flaky:?}"
    );
    for (i, want) in DELAYS_MS.iter().enumerate() {
        let gap = flaky[i + 1].1 - flaky[i].1;
        ensure!(
            gap >= Duration::from_millis(want * 9 / 10),
            "retry {} came after {gap:?}",
            i + 1
        );
    }
    ensure!(acked == 1, "only pay-flaky succeeded, acked = {acked}");
    let down = dead.get("pay-down").context("pay-down not in the DLQ")?;
    ensure!(
        header_u64(down, ATTEMPTS_HEADER) == Some(3),
        "pay-down x-attempts {down:?}"
    );
    let last = header_str(down, LAST_ERROR_HEADER);
    ensure!(
        last.as_deref() == Some("bank down (attempt 3)"),
        "pay-down x-last-error {last:?}"
    );
    ensure!(
        header_u64(down, FIRST_FAILURE_HEADER).is_some(),
        "pay-down x-first-failure"
    );
    let bad = dead.get("pay-bad").context("pay-bad not in the DLQ")?;
    ensure!(
        header_u64(bad, ATTEMPTS_HEADER) == Some(1),
        "poison is not retried: {bad:?}"
    );
    let bad_tries = tries.get("pay-bad").map_or(0, Vec::len);
    ensure!(bad_tries == 1, "pay-bad handled {bad_tries} times");
    ensure!(extra.is_none(), "an unexpected extra message in the DLQ");
    Ok(format!(
        "retries via {mode:?}: pay-flaky acked on attempt 3; DLQ holds pay-down (x-attempts 3, \
         x-last-error {last:?}) and pay-bad (poison, x-attempts 1)"
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
