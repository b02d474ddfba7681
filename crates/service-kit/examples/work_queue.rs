//! # Work queue: distributing tasks among workers
//!
//! The second RabbitMQ tutorial. A producer puts time-consuming tasks into one durable queue;
//! several workers take them from it, so the work is shared and a slow task does not hold up the
//! others. With the kit:
//!
//! - the queue is part of the [`Topology`], declared again on every reconnect;
//! - tasks are published persistent, with a message id, and `publish` returns once the broker
//!   has confirmed the task (a lost connection is retried up to the publisher's deadline);
//! - each worker is [`Kit::consume`] with manual acks: a handler returning [`Outcome::Ack`] acks
//!   the task after it is done, so a worker that dies mid-task leaves it to another worker;
//! - `prefetch: 1` and `concurrency: 1` give *fair dispatch*: the broker sends a worker its next
//!   task only when it has acked the last one, so a busy worker is not handed more.
//!
//! Run: `cargo run -p service-kit --example work_queue` (an embedded in-memory broker), or with
//! `AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f` against RabbitMQ or warren.
//! It checks that every task was done exactly once and that both workers took part.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use service_kit::{ConsumerConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, Topology};
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

/// Tasks the producer sends.
const TASKS: usize = 20;

pub async fn run(url: String) -> anyhow::Result<String> {
    let queue = common::unique("task_queue");
    let kit = Kit::start(KitConfig::new(&url), Topology::new().queue(&queue));

    // Two workers on the same queue. Each "task" sleeps 1 ms per dot in its body.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, String)>();
    let mut workers = Vec::new();
    for worker in 1..=2 {
        let mut cfg = ConsumerConfig::new(&queue);
        cfg.prefetch = 1;
        cfg.concurrency = 1;
        let done = done_tx.clone();
        let handle = kit
            .consume(cfg, move |task| {
                let done = done.clone();
                async move {
                    let dots = task.body.iter().filter(|b| **b == b'.').count();
                    tokio::time::sleep(Duration::from_millis(dots as u64)).await;
                    let _ = done.send((worker, task.text()));
                    Outcome::Ack
                }
            })
            .await;
        workers.push(handle);
    }
    common::consuming(&kit, &queue).await?;

    // The producer: each publish returns once the broker has confirmed the task.
    let producer = kit.publisher(PublisherConfig::default());
    for i in 0..TASKS {
        let body = format!("task {i} {}", ".".repeat(5 + i % 10));
        producer.publish(Message::new("", &queue, body)).await?;
    }

    let mut by_worker = BTreeMap::<usize, usize>::new();
    let mut done = Vec::new();
    while done.len() < TASKS {
        match tokio::time::timeout(common::WAIT, done_rx.recv()).await {
            Ok(Some((worker, task))) => {
                *by_worker.entry(worker).or_default() += 1;
                done.push(task);
            }
            _ => break,
        }
    }
    for w in workers {
        w.shutdown().await; // graceful drain: running tasks finish, the rest go back to the queue
    }
    kit.shutdown().await;
    common::delete(&url, &[&queue], &[]).await;

    done.sort();
    done.dedup();
    ensure!(
        done.len() == TASKS,
        "{} of {TASKS} distinct tasks done",
        done.len()
    );
    ensure!(
        by_worker.len() == 2,
        "both workers took tasks: {by_worker:?}"
    );
    Ok(format!(
        "{TASKS} tasks done once each; tasks per worker: {by_worker:?}"
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
