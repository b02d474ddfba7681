//! In-process transports vs loopback TCP with a lean client: warren-perf's own
//! (on this workspace's codec, batched writes, no I/O thread hop) instead of
//! lapin, whose per-message cost hides the transport (`inproc_bench.rs`).
//! All connections reach the same embedded in-memory broker in this process,
//! and the client's loops run on the same runtime, so the only difference is
//! the transport: an in-memory pipe (`Broker::memory_stream`, no socket), a
//! Unix socketpair (`Broker::stream`, what lapin uses) and a TCP connection to
//! the broker's loopback listener. One producer, one consumer, one queue, for
//! `SECONDS` per run; rounds alternate the transports. Prints one JSON line
//! per run (stderr), a throughput table, and a publish→deliver latency table
//! at a fixed 1,000 msg/s.
//!
//! `cargo run --release -p warren-embedded --example inproc_perf -- [SECONDS] [ROUNDS]`

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use warren_embedded::{Broker, Config};
use warren_perf::stats::{median, percentile};
use warren_perf::stream::{
    set_in_process_connector, InProcessKind, InProcessStream, IN_MEMORY_HOST, IN_PROCESS_HOST,
};
use warren_perf::throughput::{run_timed, summarize, FlowArgs};
use warren_perf::uri::AmqpUri;

/// The throughput cases: (name, body bytes, confirm window (None: no
/// confirms), auto-ack).
const CASES: [(&str, usize, Option<u64>, bool); 3] = [
    ("16B auto-ack", 16, None, true),
    ("1KiB auto-ack", 1024, None, true),
    ("16B confirms(256)+acks", 16, Some(256), false),
];

/// The latency case's publish rate.
const LATENCY_RATE_PER_S: f64 = 1000.0;

fn flow(uri: &str, size: usize, confirm: Option<u64>, auto_ack: bool) -> FlowArgs {
    FlowArgs {
        uri: uri.to_string(),
        size,
        persistent: false,
        confirm,
        prefetch: 1000,
        auto_ack,
        multiple_ack: 100,
        durable_queue: false,
        queue_prefix: None,
        json: None,
        max_priority: None,
    }
}

/// One timed run of one producer (at `rate_per_s`, 0 = flat out) and one
/// consumer; returns the run's result.
async fn run_one(
    flow: &FlowArgs,
    rate_per_s: f64,
    latency: bool,
    seconds: u64,
) -> anyhow::Result<warren_perf::throughput::RunResult> {
    let uri = AmqpUri::parse(&flow.uri)?;
    let queues = flow.queue_names(1);
    run_timed(
        &uri,
        &queues,
        false,
        flow.queue_arguments(),
        vec![flow.producer(&queues[0], rate_per_s, None)],
        vec![flow.consumer(&queues[0], None, latency)],
        Duration::from_secs(seconds),
    )
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let listener = "127.0.0.1:0".parse().context("listener address")?;
    let broker = Arc::new(Broker::start(Config::in_memory().amqp_listener(listener)).await?);
    let tcp = broker
        .amqp_addr()
        .context("the TCP listener did not start")?;
    let b = broker.clone();
    set_in_process_connector(Box::new(move |kind| match kind {
        InProcessKind::Socket => b.stream().map(InProcessStream::Socket),
        InProcessKind::Memory => b.memory_stream().map(InProcessStream::Memory),
    }));
    let transports = [
        (
            "in-memory pipe",
            format!("amqp://guest:guest@{IN_MEMORY_HOST}/%2f"),
        ),
        (
            "socketpair",
            format!("amqp://guest:guest@{IN_PROCESS_HOST}/%2f"),
        ),
        ("tcp", format!("amqp://guest:guest@{tcp}/%2f")),
    ];
    println!("| case | transport | received msg/s (median of {rounds}) | runs |");
    println!("|---|---|---|---|");
    for (case, size, confirm, auto_ack) in CASES {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); transports.len()];
        for _ in 0..rounds {
            for (i, (transport, url)) in transports.iter().enumerate() {
                let r = run_one(&flow(url, size, confirm, auto_ack), 0.0, false, seconds).await?;
                rates[i].push(median(r.samples.iter().map(|s| s.received)));
                eprintln!(
                    "{}",
                    summarize("inproc-perf", &r)
                        .str("case", case)
                        .str("transport", transport)
                        .finish()
                );
            }
        }
        for (i, (transport, _)) in transports.iter().enumerate() {
            let runs: Vec<String> = rates[i].iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "| {case} | {transport} | {:.0} | {} |",
                median(rates[i].iter().copied()),
                runs.join(", ")
            );
        }
    }
    println!();
    println!(
        "| publish→deliver at {LATENCY_RATE_PER_S} msg/s, 16 B | transport | p50 µs | p99 µs | p99.9 µs | samples |"
    );
    println!("|---|---|---|---|---|---|");
    let mut lat_us: Vec<Vec<u64>> = vec![Vec::new(); transports.len()];
    for _ in 0..rounds {
        for (i, (_, url)) in transports.iter().enumerate() {
            let r = run_one(
                &flow(url, 16, None, true),
                LATENCY_RATE_PER_S,
                true,
                seconds,
            )
            .await?;
            lat_us[i].extend(
                r.consumers
                    .iter()
                    .flat_map(|c| c.latencies_ns.iter().map(|ns| ns / 1000)),
            );
        }
    }
    for (i, (transport, _)) in transports.iter().enumerate() {
        let l = &mut lat_us[i];
        l.sort_unstable();
        println!(
            "| | {transport} | {} | {} | {} | {} |",
            percentile(l, 50.0),
            percentile(l, 99.0),
            percentile(l, 99.9),
            l.len()
        );
    }
    Ok(())
}
