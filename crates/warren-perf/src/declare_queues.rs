//! `declare-queues`: declares N queues (transient, not exclusive, no consumers)
//! and leaves them in place, so that a later run measures a broker holding
//! them (the management API or a Prometheus scrape over many queues).
//! Declares are pipelined no-wait, synced every `--batch`.

use std::path::PathBuf;
use std::time::Instant;

use amqp_codec::{Method, QueueDeclare};

use crate::client::Connection;
use crate::stats::{self, Json};
use crate::topology::{name, pipeline};
use crate::uri::AmqpUri;

#[derive(clap::Args, Debug, Clone)]
pub struct DeclareQueuesArgs {
    /// Broker URI
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Queues to declare
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Queue names are PREFIX-0 .. PREFIX-(count-1)
    #[arg(long, default_value = "warren-perf-held")]
    pub prefix: String,
    /// Methods written per batch before waiting for the broker
    #[arg(long, default_value_t = 1_000)]
    pub batch: u64,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: DeclareQueuesArgs) -> anyhow::Result<()> {
    let uri = AmqpUri::parse(&args.uri)?;
    let mut conn = Connection::connect(&uri).await?;
    conn.open_channel(1).await?;
    let q = |i: u64| format!("{}-{i}", args.prefix);
    let declare = |i: u64| -> anyhow::Result<Method> {
        Ok(Method::QueueDeclare(QueueDeclare {
            queue: name(&q(i))?,
            no_wait: true,
            ..Default::default()
        }))
    };
    let t = Instant::now();
    let n = args.count.max(1);
    conn.send(1, &declare(0)?).await?;
    pipeline(&mut conn, args.batch, &q(0), (1..n).map(declare)).await?;
    let secs = t.elapsed().as_secs_f64();
    conn.close().await?;
    let json = Json::default()
        .str("scenario", "declare-queues")
        .num("count", n as f64)
        .num("seconds", secs)
        .num("declares_per_s", n as f64 / secs.max(1e-9));
    stats::emit(json, args.json.as_deref())
}
