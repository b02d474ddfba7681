//! `idle-connections`: open N connections (each with one channel), hold them idle,
//! and report the broker's RSS growth per connection.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::client::Connection;
use crate::stats::{self, maybe_rss, Json};
use crate::uri::AmqpUri;

/// Handshakes in flight at once while opening (keeps the accept backlog sane).
const OPEN_CONCURRENCY: usize = 200;

#[derive(clap::Args, Debug, Clone)]
pub struct IdleConnectionsArgs {
    /// Broker URI
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Connections to open
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Seconds to hold them before measuring
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Broker process id, to report its VmRSS
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: IdleConnectionsArgs) -> anyhow::Result<()> {
    let uri = AmqpUri::parse(&args.uri)?;
    let rss_before = maybe_rss(args.broker_pid);
    let started = Instant::now();
    let mut conns = Vec::with_capacity(args.count);
    let mut opening = JoinSet::new();
    for i in 0..args.count {
        if opening.len() >= OPEN_CONCURRENCY {
            if let Some(r) = opening.join_next().await {
                conns.push(r.context("open task panicked")??);
            }
        }
        let uri = uri.clone();
        opening.spawn(async move {
            let mut c = Connection::connect(&uri)
                .await
                .with_context(|| format!("connection {i}"))?;
            c.open_channel(1).await?;
            anyhow::Ok(c)
        });
    }
    while let Some(r) = opening.join_next().await {
        conns.push(r.context("open task panicked")??);
    }
    let open_s = started.elapsed().as_secs_f64();
    eprintln!(
        "{} connections open in {open_s:.2}s; holding {}s",
        conns.len(),
        args.hold
    );
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let rss_held = maybe_rss(args.broker_pid);
    let per_conn = match (rss_before, rss_held) {
        (Some(b), Some(h)) => Some((h as f64 - b as f64) / conns.len().max(1) as f64),
        _ => None,
    };
    if let Some(k) = per_conn {
        eprintln!("broker RSS grew {k:.1} KiB per connection");
    }
    let mut closing = JoinSet::new();
    for c in conns {
        if closing.len() >= OPEN_CONCURRENCY {
            closing.join_next().await;
        }
        closing.spawn(async move { c.close().await });
    }
    while closing.join_next().await.is_some() {}
    let json = Json::default()
        .str("scenario", "idle-connections")
        .num("count", args.count as f64)
        .num("open_s", open_s)
        .opt("rss_before_kib", rss_before.map(|v| v as f64))
        .opt("rss_held_kib", rss_held.map(|v| v as f64))
        .opt("rss_per_connection_kib", per_conn);
    stats::emit(json, args.json.as_deref())
}
