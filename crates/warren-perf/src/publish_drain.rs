//! `publish-drain`: publish N messages to a queue nobody consumes (confirm window),
//! note the broker's RSS, then drain the queue with one consumer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::client::Connection;
use crate::stats::{self, maybe_rss, rss_split_kib, Counters, Json, Signal};
use crate::throughput::FlowArgs;
use crate::uri::AmqpUri;
use crate::{consumer, producer};

#[derive(clap::Args, Debug, Clone)]
pub struct PublishDrainArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Messages to publish
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Broker process id, to report its VmRSS before/after
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Which part to run: `both`; `publish` (leave the queue full, e.g. to restart the
    /// broker and measure recovery); `drain` (drain an existing queue, `--count` is
    /// then only an upper bound and the queue's depth is what is drained)
    #[arg(long, default_value = "both", value_parser = ["both", "publish", "drain"])]
    pub phase: String,
    /// Exact queue name (default: unique per run); needed to split publish and drain
    #[arg(long)]
    pub queue: Option<String>,
    /// Seconds to wait after publishing before reading the broker's RSS
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
}

pub async fn run(args: PublishDrainArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be positive");
    }
    let uri = AmqpUri::parse(&args.flow.uri)?;
    let queue = match &args.queue {
        Some(q) => q.clone(),
        None => args.flow.queue_names(1).remove(0),
    };
    let (do_publish, do_drain) = match args.phase.as_str() {
        "publish" => (true, false),
        "drain" => (false, true),
        _ => (true, true),
    };
    let mut admin = Connection::connect(&uri)
        .await
        .context("admin connection")?;
    admin.open_channel(1).await?;
    admin
        .declare_queue_with(
            1,
            &queue,
            args.flow.durable_queue,
            args.flow.queue_arguments(),
        )
        .await?;
    let rss_before = maybe_rss(args.broker_pid);
    let split_before = rss_split_kib(args.broker_pid);
    let counters = Arc::new(Counters::default());

    let (stop_tx, stop) = Signal::new();
    let reporter = tokio::spawn(stats::report(counters.clone(), stop.clone()));
    let mut published = producer::ProducerOutcome::default();
    let mut publish_s = 0.0;
    if do_publish {
        let conn = Connection::connect(&uri).await?;
        let cfg = args.flow.producer(&queue, 0.0, Some(args.count));
        let started = Instant::now();
        let conn = producer::prepare(conn, &cfg).await?;
        published = producer::run(conn, cfg, counters.clone(), stop.clone()).await?;
        publish_s = started.elapsed().as_secs_f64();
    }
    let in_queue = admin
        .declare_queue_with(
            1,
            &queue,
            args.flow.durable_queue,
            args.flow.queue_arguments(),
        )
        .await?;
    if do_publish {
        eprintln!(
            "published {} in {publish_s:.2}s ({:.0} msg/s); queue holds {in_queue}",
            published.published,
            published.published as f64 / publish_s
        );
        tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    } else {
        eprintln!("queue {queue} holds {in_queue}");
    }
    let rss_full = maybe_rss(args.broker_pid);
    let split_full = rss_split_kib(args.broker_pid);

    let mut drained = consumer::ConsumerOutcome::default();
    let mut drain_s = 0.0;
    if do_drain {
        let expect = if do_publish {
            published.published
        } else {
            u64::from(in_queue)
        };
        let conn = Connection::connect(&uri).await?;
        let cfg = args.flow.consumer(&queue, Some(expect), false);
        let started = Instant::now();
        if expect > 0 {
            drained = consumer::run(conn, cfg, counters.clone(), stop.clone()).await?;
        }
        drain_s = started.elapsed().as_secs_f64();
        eprintln!(
            "drained {} in {drain_s:.2}s ({:.0} msg/s)",
            drained.received,
            drained.received as f64 / drain_s
        );
    }
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    let rss_after = maybe_rss(args.broker_pid);
    if do_drain {
        admin.delete_queue(1, &queue).await?;
    }
    admin.close().await?;

    let kib = |v: Option<u64>| v.map(|v| v as f64);
    let json = Json::default()
        .str("scenario", "publish-drain")
        .num("count", args.count as f64)
        .num("size", args.flow.size as f64)
        .num("published", published.published as f64)
        .num("confirmed", published.confirmed as f64)
        .num("queue_depth", f64::from(in_queue))
        .num("publish_s", publish_s)
        .num(
            "publish_per_s",
            if do_publish {
                published.published as f64 / publish_s
            } else {
                0.0
            },
        )
        .num("drained", drained.received as f64)
        .num("drain_s", drain_s)
        .num(
            "drain_per_s",
            if do_drain {
                drained.received as f64 / drain_s
            } else {
                0.0
            },
        )
        .opt("rss_before_kib", kib(rss_before))
        .opt("rss_full_kib", kib(rss_full))
        .opt("rss_after_kib", kib(rss_after))
        .opt("rss_anon_before_kib", split_before.map(|s| s.0 as f64))
        .opt("rss_file_before_kib", split_before.map(|s| s.1 as f64))
        .opt("rss_anon_full_kib", split_full.map(|s| s.0 as f64))
        .opt("rss_file_full_kib", split_full.map(|s| s.1 as f64));
    stats::emit(json, args.flow.json.as_deref())
}
