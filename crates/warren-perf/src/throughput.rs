//! `throughput`: P producers and C consumers over Q queues for a fixed duration;
//! prints rates every second and a JSON summary with the medians.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use amqp_codec::{FieldTable, FieldValue};
use anyhow::Context;
use tokio::task::JoinSet;

use crate::client::Connection;
use crate::consumer::{self, AckMode, ConsumerConfig, ConsumerOutcome};
use crate::producer::{self, ProducerConfig, ProducerOutcome, CONFIRM_WINDOW_MAX};
use crate::stats::{self, median, Counters, Json, Sample, Signal};
use crate::uri::AmqpUri;

/// Options shared by the message-flow scenarios.
#[derive(clap::Args, Debug, Clone)]
pub struct FlowArgs {
    /// Broker URI
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Message body size in bytes
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Publish with delivery-mode 2
    #[arg(long)]
    pub persistent: bool,
    /// Publisher confirms with at most N unconfirmed messages per producer
    #[arg(long, value_name = "N")]
    pub confirm: Option<u64>,
    /// basic.qos prefetch count for manual-ack consumers
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    /// Consume with no-ack
    #[arg(long)]
    pub auto_ack: bool,
    /// Manual ack with `multiple` every N deliveries (1 = ack each)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub multiple_ack: u32,
    /// Declare the queues durable
    #[arg(long)]
    pub durable_queue: bool,
    /// Queue name prefix (default: unique per run)
    #[arg(long)]
    pub queue_prefix: Option<String>,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Declare the queues with x-max-priority N and publish with
    /// priorities cycling 0..N-1
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub max_priority: Option<u8>,
}

impl FlowArgs {
    pub fn ack_mode(&self) -> AckMode {
        if self.auto_ack {
            AckMode::Auto
        } else {
            AckMode::Multiple(self.multiple_ack)
        }
    }

    pub fn queue_names(&self, queues: usize) -> Vec<String> {
        let prefix = self
            .queue_prefix
            .clone()
            .unwrap_or_else(|| format!("warren-perf-{}-{}", std::process::id(), stats::now_ns()));
        (0..queues.max(1))
            .map(|i| format!("{prefix}-{i}"))
            .collect()
    }

    pub fn producer(&self, queue: &str, rate_per_s: f64, count: Option<u64>) -> ProducerConfig {
        ProducerConfig {
            exchange: String::new(),
            routing_key: queue.to_string(),
            size_bytes: self.size,
            persistent: self.persistent,
            confirm_window: self.confirm.map(|w| w.clamp(1, CONFIRM_WINDOW_MAX)),
            rate_per_s,
            count,
            priorities: self.max_priority,
        }
    }

    /// Arguments to declare the queues with.
    pub fn queue_arguments(&self) -> FieldTable {
        let mut t = FieldTable::new();
        if let Some(n) = self.max_priority {
            t.insert("x-max-priority".into(), FieldValue::U8(n));
        }
        t
    }

    pub fn consumer(
        &self,
        queue: &str,
        expect: Option<u64>,
        record_latency: bool,
    ) -> ConsumerConfig {
        ConsumerConfig {
            queue: queue.to_string(),
            prefetch: self.prefetch,
            ack: self.ack_mode(),
            expect,
            record_latency,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Publishing connections
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consuming connections
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Queues (producer i and consumer i use queue i mod Q)
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Messages per second per producer (0 = unlimited)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds to run
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// Everything a timed run produced.
pub struct RunResult {
    pub samples: Vec<Sample>,
    pub producers: Vec<ProducerOutcome>,
    pub consumers: Vec<ConsumerOutcome>,
}

/// Declares the queues, starts consumers then producers, runs for `duration`,
/// stops everyone and deletes the queues.
pub async fn run_timed(
    uri: &AmqpUri,
    queues: &[String],
    durable: bool,
    queue_arguments: FieldTable,
    producers: Vec<ProducerConfig>,
    consumers: Vec<ConsumerConfig>,
    duration: Duration,
) -> anyhow::Result<RunResult> {
    let mut admin = Connection::connect(uri).await.context("admin connection")?;
    admin.open_channel(1).await?;
    for q in queues {
        admin
            .declare_queue_with(1, q, durable, queue_arguments.clone())
            .await?;
    }
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop) = Signal::new();
    let mut consumer_tasks = JoinSet::new();
    for cfg in consumers {
        let conn = Connection::connect(uri)
            .await
            .context("consumer connection")?;
        consumer_tasks.spawn(consumer::run(conn, cfg, counters.clone(), stop.clone()));
    }
    // Publishing starts only once every connection is open and set up: a broker
    // busy with the first producer must not skew (or starve) the others' setup.
    let mut prepared = Vec::with_capacity(producers.len());
    for cfg in producers {
        let conn = Connection::connect(uri)
            .await
            .context("producer connection")?;
        prepared.push((producer::prepare(conn, &cfg).await?, cfg));
    }
    let mut producer_tasks = JoinSet::new();
    for (conn, cfg) in prepared {
        producer_tasks.spawn(producer::run(conn, cfg, counters.clone(), stop.clone()));
    }
    let reporter = tokio::spawn(stats::report(counters.clone(), stop.clone()));
    // A task failing early ends the run (and is reported) instead of idling on.
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    let mut early_error = None;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            Some(r) = producer_tasks.join_next(), if !producer_tasks.is_empty() => {
                if let Err(e) = flatten(r) { early_error = Some(e); break; }
            }
            Some(r) = consumer_tasks.join_next(), if !consumer_tasks.is_empty() => {
                if let Err(e) = flatten(r) { early_error = Some(e); break; }
            }
        }
    }
    let _ = stop_tx.send(true);
    let samples = reporter.await.context("reporter panicked")?;
    let producers = join_all(producer_tasks).await?;
    let consumers = join_all(consumer_tasks).await?;
    for q in queues {
        admin.delete_queue(1, q).await?;
    }
    admin.close().await?;
    if let Some(e) = early_error {
        return Err(e.context("a producer or consumer failed"));
    }
    Ok(RunResult {
        samples,
        producers,
        consumers,
    })
}

fn flatten<T>(r: Result<anyhow::Result<T>, tokio::task::JoinError>) -> anyhow::Result<T> {
    r.context("task panicked")?
}

async fn join_all<T: 'static>(mut set: JoinSet<anyhow::Result<T>>) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(flatten(r)?);
    }
    Ok(out)
}

/// The JSON summary of a timed run (rates are medians of per-second samples).
pub fn summarize(scenario: &str, r: &RunResult) -> Json {
    let total = |f: fn(&ProducerOutcome) -> u64| r.producers.iter().map(f).sum::<u64>() as f64;
    Json::default()
        .str("scenario", scenario)
        .num("seconds", r.samples.len() as f64)
        .num(
            "sent_per_s_median",
            median(r.samples.iter().map(|s| s.sent)),
        )
        .num(
            "confirmed_per_s_median",
            median(r.samples.iter().map(|s| s.confirmed)),
        )
        .num(
            "received_per_s_median",
            median(r.samples.iter().map(|s| s.received)),
        )
        .num("sent_total", total(|p| p.published))
        .num("confirmed_total", total(|p| p.confirmed))
        .num("nacked_total", total(|p| p.nacked))
        .num(
            "received_total",
            r.consumers.iter().map(|c| c.received).sum::<u64>() as f64,
        )
}

pub async fn run(args: ThroughputArgs) -> anyhow::Result<()> {
    let uri = AmqpUri::parse(&args.flow.uri)?;
    let queues = args.flow.queue_names(args.queues);
    let producers = (0..args.producers)
        .map(|i| {
            args.flow
                .producer(&queues[i % queues.len()], args.rate, None)
        })
        .collect();
    let consumers = (0..args.consumers)
        .map(|i| args.flow.consumer(&queues[i % queues.len()], None, false))
        .collect();
    let result = run_timed(
        &uri,
        &queues,
        args.flow.durable_queue,
        args.flow.queue_arguments(),
        producers,
        consumers,
        Duration::from_secs(args.duration),
    )
    .await?;
    let json = summarize("throughput", &result)
        .num("producers", args.producers as f64)
        .num("consumers", args.consumers as f64)
        .num("queues", queues.len() as f64)
        .num("size", args.flow.size as f64)
        .num(
            "max_priority",
            f64::from(args.flow.max_priority.unwrap_or(0)),
        );
    stats::emit(json, args.flow.json.as_deref())
}
