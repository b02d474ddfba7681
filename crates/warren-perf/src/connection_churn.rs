//! `connection-churn`: open and close N connections (handshake + optional channel
//! + close), C at a time; reports connections per second.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::task::JoinSet;

use crate::client::Connection;
use crate::stats::{self, Json};
use crate::uri::AmqpUri;

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionChurnArgs {
    /// Broker URI
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Connections to open and close
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Connections in flight at once
    #[arg(long, default_value_t = 1)]
    pub concurrency: u64,
    /// Also open a channel on each connection
    #[arg(long)]
    pub channel: bool,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: ConnectionChurnArgs) -> anyhow::Result<()> {
    let uri = Arc::new(AmqpUri::parse(&args.uri)?);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency.clamp(1, args.count.max(1)) {
        let (uri, next, count, channel) = (uri.clone(), next.clone(), args.count, args.channel);
        workers.spawn(async move {
            while next.fetch_add(1, Relaxed) < count {
                let mut conn = Connection::connect(&uri).await?;
                if channel {
                    conn.open_channel(1).await?;
                }
                conn.close().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = workers.join_next().await {
        r.context("worker panicked")??;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = args.count as f64 / secs;
    eprintln!("{} connections in {secs:.2}s ({rate:.0}/s)", args.count);
    let json = Json::default()
        .str("scenario", "connection-churn")
        .num("count", args.count as f64)
        .num("concurrency", args.concurrency as f64)
        .num("seconds", secs)
        .num("connections_per_s", rate);
    stats::emit(json, args.json.as_deref())
}
