//! In-process transport vs loopback TCP with a lean client: warren-perf's own
//! (on this workspace's codec, batched writes, no I/O thread hop) instead of
//! lapin, whose per-message cost hides the transport (`inproc_bench.rs`).
//! Both connections reach the same embedded in-memory broker in this process,
//! and the client's loops run on the same runtime, so the only difference is
//! the socket: a Unix socketpair handed over in-process vs a TCP connection to
//! the broker's loopback listener. One producer, one consumer, one queue, for
//! `SECONDS` per run; rounds alternate the two transports. Prints one JSON line
//! per run and a median summary per case.
//!
//! `cargo run --release -p warren-embedded --example inproc_perf -- [SECONDS] [ROUNDS]`

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use warren_embedded::{Broker, Config};
use warren_perf::stats::median;
use warren_perf::stream::{set_in_process_connector, IN_PROCESS_HOST};
use warren_perf::throughput::{run_timed, summarize, FlowArgs};
use warren_perf::uri::AmqpUri;

/// The cases: (name, body bytes, confirm window (None: no confirms), auto-ack).
const CASES: [(&str, usize, Option<u64>, bool); 3] = [
    ("16B auto-ack", 16, None, true),
    ("1KiB auto-ack", 1024, None, true),
    ("16B confirms(256)+acks", 16, Some(256), false),
];

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
    set_in_process_connector(Box::new(move || b.stream()));
    let transports = [
        (
            "in-process",
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
                let flow = FlowArgs {
                    uri: url.clone(),
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
                };
                let uri = AmqpUri::parse(url)?;
                let queues = flow.queue_names(1);
                let r = run_timed(
                    &uri,
                    &queues,
                    false,
                    flow.queue_arguments(),
                    vec![flow.producer(&queues[0], 0.0, None)],
                    vec![flow.consumer(&queues[0], None, false)],
                    Duration::from_secs(seconds),
                )
                .await?;
                let received = median(r.samples.iter().map(|s| s.received));
                rates[i].push(received);
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
    Ok(())
}
