//! In-process transport vs loopback TCP, both to the same embedded broker,
//! both with lapin: throughput (one publisher with confirms, a window of
//! `WINDOW` unconfirmed publishes, one auto-ack consumer, N messages) and
//! round-trip latency (publish one, wait for its delivery, repeat).
//!
//! `cargo run --release -p warren-embedded --example inproc_bench -- [N] [BODY_BYTES] [memory|DIR]`

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use warren_embedded::{Broker, Config};

/// Unconfirmed publishes in flight at most.
const WINDOW: usize = 256;
/// Round trips in the latency run.
const ROUND_TRIPS: usize = 5_000;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Publishes `n` messages and consumes them at once; messages per second.
async fn throughput(
    publish: &Connection,
    consume: &Connection,
    n: usize,
    body: &[u8],
    persistent: bool,
) -> Res<f64> {
    let q = format!("bench-{}", fastrand_u64());
    let pch = publish.create_channel().await?;
    pch.queue_declare(
        &q,
        QueueDeclareOptions {
            durable: persistent,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    pch.confirm_select(ConfirmSelectOptions::default()).await?;
    let cch = consume.create_channel().await?;
    let mut consumer = cch
        .basic_consume(
            &q,
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let start = Instant::now();
    let consumer_task = tokio::spawn(async move {
        let mut got = 0usize;
        while got < n {
            match consumer.next().await {
                Some(Ok(_)) => got += 1,
                _ => break,
            }
        }
        got
    });
    let props = BasicProperties::default().with_delivery_mode(if persistent { 2 } else { 1 });
    let mut window = VecDeque::with_capacity(WINDOW);
    for _ in 0..n {
        if window.len() == WINDOW {
            if let Some(c) = window.pop_front() {
                let c: lapin::publisher_confirm::PublisherConfirm = c;
                c.await?;
            }
        }
        window.push_back(
            pch.basic_publish("", &q, BasicPublishOptions::default(), body, props.clone())
                .await?,
        );
    }
    for c in window {
        c.await?;
    }
    let got = consumer_task.await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, n, "every message consumed");
    pch.queue_delete(&q, QueueDeleteOptions::default()).await?;
    Ok(n as f64 / secs)
}

/// Publish one, await its delivery, `ROUND_TRIPS` times: p50 and p99.
async fn round_trips(conn: &Connection, body: &[u8]) -> Res<(Duration, Duration)> {
    let q = format!("rtt-{}", fastrand_u64());
    let ch = conn.create_channel().await?;
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await?;
    let mut consumer = ch
        .basic_consume(
            &q,
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await?;
        consumer.next().await.ok_or("consumer ended")??;
        samples.push(t.elapsed());
    }
    samples.sort();
    ch.queue_delete(&q, QueueDeleteOptions::default()).await?;
    Ok((
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    ))
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(200_000), |s| s.parse())?;
    let body = vec![b'x'; args.get(2).map_or(Ok(64), |s| s.parse())?];
    let storage = args.get(3).cloned().unwrap_or_else(|| "memory".into());
    let config = match storage.as_str() {
        "memory" => Config::in_memory(),
        dir => Config::durable(dir),
    };
    let persistent = storage != "memory";
    let broker = Broker::start(config.amqp_listener("127.0.0.1:0".parse()?)).await?;
    let tcp_url = format!("amqp://{}", broker.amqp_addr().ok_or("no TCP listener")?);
    println!(
        "{n} messages of {} bytes, {} (publisher: confirms, window {WINDOW}; consumer: auto-ack); {ROUND_TRIPS} round trips",
        body.len(),
        if persistent { format!("persistent, data dir {storage}") } else { "transient, in memory".into() }
    );
    for round in 0..2 {
        for (label, inproc) in [("in-process", true), ("loopback TCP", false)] {
            let (p, c) = if inproc {
                (
                    broker.connect(Default::default()).await?,
                    broker.connect(Default::default()).await?,
                )
            } else {
                (
                    Connection::connect(&tcp_url, Default::default()).await?,
                    Connection::connect(&tcp_url, Default::default()).await?,
                )
            };
            let rate = throughput(&p, &c, n, &body, persistent).await?;
            let (p50, p99) = round_trips(&p, &body).await?;
            println!(
                "round {round} {label:>12}: {rate:>9.0} msg/s   round trip p50 {:>6.1} us  p99 {:>6.1} us",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
            let _ = p.close(200, "done").await;
            let _ = c.close(200, "done").await;
        }
    }
    broker.shutdown().await;
    Ok(())
}
