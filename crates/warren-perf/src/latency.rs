//! `latency`: one producer at a fixed rate, one consumer; every body carries its
//! send time, and the consumer reports publish→deliver percentiles in µs.

use std::time::Duration;

use anyhow::bail;

use crate::stats::{self, percentile};
use crate::throughput::{run_timed, summarize, FlowArgs};
use crate::uri::AmqpUri;

#[derive(clap::Args, Debug, Clone)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Messages per second
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds to run
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

pub async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    if args.flow.size < 8 {
        bail!("--size must be at least 8 bytes to carry the timestamp");
    }
    if args.rate <= 0.0 {
        bail!("--rate must be positive for a latency run");
    }
    let uri = AmqpUri::parse(&args.flow.uri)?;
    let queues = args.flow.queue_names(1);
    let producer = args.flow.producer(&queues[0], args.rate, None);
    let consumer = args.flow.consumer(&queues[0], None, true);
    let result = run_timed(
        &uri,
        &queues,
        args.flow.durable_queue,
        args.flow.queue_arguments(),
        vec![producer],
        vec![consumer],
        Duration::from_secs(args.duration),
    )
    .await?;
    let mut lat_us: Vec<u64> = result
        .consumers
        .iter()
        .flat_map(|c| c.latencies_ns.iter().map(|ns| ns / 1000))
        .collect();
    lat_us.sort_unstable();
    let p = |q| percentile(&lat_us, q) as f64;
    eprintln!(
        "latency µs: p50 {} p95 {} p99 {} p99.9 {} max {} ({} samples)",
        p(50.0),
        p(95.0),
        p(99.0),
        p(99.9),
        p(100.0),
        lat_us.len()
    );
    let json = summarize("latency", &result)
        .num("rate", args.rate)
        .num("samples", lat_us.len() as f64)
        .num("p50_us", p(50.0))
        .num("p95_us", p(95.0))
        .num("p99_us", p(99.0))
        .num("p999_us", p(99.9))
        .num("max_us", p(100.0));
    stats::emit(json, args.flow.json.as_deref())
}
