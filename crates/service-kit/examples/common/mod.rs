//! What every example shares: where the broker is, unique names, and cleaning up.
//!
//! Each example is `pub async fn run(url) -> anyhow::Result<String>` (the pattern, end to end,
//! checking its own outcome) plus a `main` that calls [`main`]. The kit's test suite
//! (`tests/kit/examples.rs`) calls the same `run` against the warren it starts, or `AMQP_URL`.
#![allow(dead_code)] // each example uses its own subset

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use lapin::ConnectionProperties;
use service_kit::{retry, RetryMode, RetryPolicy};

/// Name of the in-memory broker started when `AMQP_URL` is unset (`warren-embedded://examples`).
const EMBEDDED_NAME: &str = "examples";
/// How long an example waits for what the broker should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs `example` against `AMQP_URL`, or against an in-memory warren inside this process when it
/// is unset; prints the example's summary, or its failure and exits with 1.
pub async fn main<F, Fut>(example: F) -> ExitCode
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    let (url, embedded) = match std::env::var("AMQP_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let cfg = warren_embedded::Config::in_memory().name(EMBEDDED_NAME);
            match warren_embedded::Broker::start(cfg).await {
                Ok(b) => (b.url(), Some(b)),
                Err(e) => {
                    eprintln!("FAILED: could not start the embedded broker: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    println!("broker: {url}");
    let outcome = example(url).await;
    if let Some(b) = embedded {
        b.shutdown().await;
    }
    match outcome {
        Ok(summary) => {
            println!("ok: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `name` with a random suffix, so that runs against a shared broker do not meet.
pub fn unique(name: &str) -> String {
    let id = service_kit::message::new_id();
    format!("{name}.{}", &id[id.len() - 8..])
}

/// Deletes the queues and exchanges an example declared (best effort), and with each queue the
/// dead-letter queue and TTL-ladder wait queues a consumer with the default retry policy added.
pub async fn delete(url: &str, queues: &[&str], exchanges: &[&str]) {
    let props = ConnectionProperties::default();
    let Ok(conn) = warren_embedded::shovel::connect_any(url, props).await else {
        return;
    };
    let policy = RetryPolicy::default();
    if let Ok(ch) = conn.create_channel().await {
        for q in queues {
            let _ = ch.queue_delete(q, Default::default()).await;
            for extra in retry::retry_topology(q, &policy, RetryMode::TtlLadder).queues {
                let _ = ch.queue_delete(&extra.name, Default::default()).await;
            }
        }
        for e in exchanges {
            let _ = ch.exchange_delete(e, Default::default()).await;
        }
    }
    let _ = conn.close(200, "example done").await;
}

/// Waits until the kit's health shows a consumer on `queue`.
pub async fn consuming(kit: &service_kit::Kit, queue: &str) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    while kit.health().report().consumers.get(queue) != Some(&true) {
        anyhow::ensure!(
            start.elapsed() < WAIT,
            "no consumer on {queue} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
