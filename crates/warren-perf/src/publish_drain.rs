//! `publish-drain`: publish N messages to a queue nobody consumes (confirm window),
//! note the broker's RSS, then drain the queue with one consumer.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::client::Connection;
use crate::stats::{self, maybe_rss, Counters, Json, Signal};
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
}

pub async fn run(args: PublishDrainArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be positive");
    }
    let uri = AmqpUri::parse(&args.flow.uri)?;
    let queue = args.flow.queue_names(1).remove(0);
    let mut admin = Connection::connect(&uri)
        .await
        .context("admin connection")?;
    admin.open_channel(1).await?;
    admin
        .declare_queue(1, &queue, args.flow.durable_queue)
        .await?;
    let rss_before = maybe_rss(args.broker_pid);
    let counters = Arc::new(Counters::default());

    let (stop_tx, stop) = Signal::new();
    let reporter = tokio::spawn(stats::report(counters.clone(), stop.clone()));
    let conn = Connection::connect(&uri).await?;
    let cfg = args.flow.producer(&queue, 0.0, Some(args.count));
    let started = Instant::now();
    let conn = producer::prepare(conn, &cfg).await?;
    let published = producer::run(conn, cfg, counters.clone(), stop.clone()).await?;
    let publish_s = started.elapsed().as_secs_f64();
    let in_queue = admin
        .declare_queue(1, &queue, args.flow.durable_queue)
        .await?;
    let rss_full = maybe_rss(args.broker_pid);
    eprintln!(
        "published {} in {publish_s:.2}s ({:.0} msg/s); queue holds {in_queue}",
        published.published,
        published.published as f64 / publish_s
    );

    let conn = Connection::connect(&uri).await?;
    let cfg = args.flow.consumer(&queue, Some(published.published), false);
    let started = Instant::now();
    let drained = consumer::run(conn, cfg, counters.clone(), stop.clone()).await?;
    let drain_s = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    let rss_after = maybe_rss(args.broker_pid);
    eprintln!(
        "drained {} in {drain_s:.2}s ({:.0} msg/s)",
        drained.received,
        drained.received as f64 / drain_s
    );
    admin.delete_queue(1, &queue).await?;
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
        .num("publish_per_s", published.published as f64 / publish_s)
        .num("drained", drained.received as f64)
        .num("drain_s", drain_s)
        .num("drain_per_s", drained.received as f64 / drain_s)
        .opt("rss_before_kib", kib(rss_before))
        .opt("rss_full_kib", kib(rss_full))
        .opt("rss_after_kib", kib(rss_after));
    stats::emit(json, args.flow.json.as_deref())
}
