//! `queue-churn`: declare and delete N queues one after the other on one channel;
//! reports declare+delete pairs per second.

use std::path::PathBuf;
use std::time::Instant;

use crate::client::Connection;
use crate::stats::{self, Json};
use crate::uri::AmqpUri;

#[derive(clap::Args, Debug, Clone)]
pub struct QueueChurnArgs {
    /// Broker URI
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Queues to declare and delete
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Declare the queues durable
    #[arg(long)]
    pub durable_queue: bool,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: QueueChurnArgs) -> anyhow::Result<()> {
    let uri = AmqpUri::parse(&args.uri)?;
    let mut conn = Connection::connect(&uri).await?;
    conn.open_channel(1).await?;
    let prefix = format!(
        "warren-perf-churn-{}-{}",
        std::process::id(),
        stats::now_ns()
    );
    let started = Instant::now();
    for i in 0..args.count {
        let name = format!("{prefix}-{i}");
        conn.declare_queue(1, &name, args.durable_queue).await?;
        conn.delete_queue(1, &name).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    conn.close().await?;
    let rate = args.count as f64 / secs;
    eprintln!(
        "{} queues declared+deleted in {secs:.2}s ({rate:.0}/s)",
        args.count
    );
    let json = Json::default()
        .str("scenario", "queue-churn")
        .num("count", args.count as f64)
        .num("seconds", secs)
        .num("queues_per_s", rate);
    stats::emit(json, args.json.as_deref())
}
