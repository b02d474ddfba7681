//! # RPC: request/reply over the broker
//!
//! The sixth RabbitMQ tutorial. A client sends a request to a server's queue and waits for the
//! answer. The request carries `reply_to` (where to answer) and a `correlation_id` (which request
//! an answer belongs to). With the kit:
//!
//! - [`Kit::rpc_server`] consumes the request queue and answers each request through the kit's
//!   confirming publisher, with the request's correlation id, before acking it;
//! - [`Kit::rpc_client`] uses *direct reply-to* (`amq.rabbitmq.reply-to`: no reply queue to
//!   declare or delete); many calls can be in flight on its one channel, each matched to its reply
//!   by a fresh correlation id;
//! - every call has a timeout (`KitError::RpcTimeout`), and a request no queue takes fails at once
//!   with `KitError::Returned` (312 NO_ROUTE) instead of waiting out the timeout.
//!
//! Run: `cargo run -p service-kit --example rpc` (embedded broker) or with `AMQP_URL=...`.
//! It checks 10 concurrent answers, a timeout and a NO_ROUTE.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use service_kit::{ConsumerConfig, Kit, KitConfig, KitError, Topology};

#[path = "common/mod.rs"]
mod common;

/// The server's work: the n-th Fibonacci number.
fn fib(n: u64) -> u64 {
    (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0
}

pub async fn run(url: String) -> anyhow::Result<String> {
    let rpc_queue = common::unique("rpc_queue");
    let idle_queue = common::unique("rpc_idle"); // a queue nobody serves
    let topology = Topology::new().queue(&rpc_queue).queue(&idle_queue);
    let kit = Kit::start(KitConfig::new(&url), topology);

    let server = kit
        .rpc_server(ConsumerConfig::new(&rpc_queue), |request| async move {
            let n: u64 = request.text().trim().parse().unwrap_or(0);
            fib(n).to_string().into_bytes()
        })
        .await;

    // Ten calls at once on one client.
    let client = kit.rpc_client();
    let calls: Vec<_> = (0..10u64)
        .map(|n| {
            let (client, q) = (client.clone(), rpc_queue.clone());
            tokio::spawn(async move { (n, client.call("", &q, n.to_string().as_bytes()).await) })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        let (n, reply) = call.await?;
        let reply = reply.with_context(|| format!("fib({n})"))?;
        answers.push((n, reply.text()));
    }

    let started = Instant::now();
    let timeout = client
        .call_with_timeout("", &idle_queue, b"7", Duration::from_millis(300))
        .await;
    let waited = started.elapsed();
    let no_route = client.call("", &common::unique("nobody"), b"7").await;

    server.shutdown().await;
    kit.shutdown().await;
    common::delete(&url, &[&rpc_queue, &idle_queue], &[]).await;

    for (n, answer) in &answers {
        ensure!(*answer == fib(*n).to_string(), "fib({n}) answered {answer}");
    }
    ensure!(
        matches!(timeout, Err(KitError::RpcTimeout(_))) && waited < Duration::from_secs(2),
        "a call nobody answers times out: {timeout:?} after {waited:?}"
    );
    ensure!(
        matches!(no_route, Err(KitError::Returned { code: 312, .. })),
        "a call to no queue is returned: {no_route:?}"
    );
    Ok(format!(
        "fib(0..10) = {:?}; unanswered call timed out after {waited:?}; unroutable call → 312",
        answers.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>()
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
