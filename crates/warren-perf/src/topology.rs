//! `topology`: the cost of a large topology — declare Q queues, add B
//! bindings (to a direct and a topic exchange), publish through both with
//! the topology in place, delete queues one by one, then drop it all.
//! Reports the rate of each phase; shows whether per-operation work grows
//! with the number of queues or bindings (it should not).

use std::path::PathBuf;
use std::time::Instant;

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, BasicProperties,
    BasicPublish, ExchangeDeclare, ExchangeDelete, FieldTable, Method, QueueBind, QueueDeclare,
    QueueDelete, ShortStr,
};
use anyhow::bail;
use bytes::BytesMut;

use crate::client::Connection;
use crate::stats::{self, Json};
use crate::uri::AmqpUri;

#[derive(clap::Args, Debug, Clone)]
pub struct TopologyArgs {
    /// Broker URI
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Queues to declare
    #[arg(long, default_value_t = 10_000)]
    pub queues: u64,
    /// Bindings to add in all (half to the direct exchange, half to the topic one)
    #[arg(long, default_value_t = 100_000)]
    pub bindings: u64,
    /// Messages to publish through each exchange
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Queues to delete one by one (timed) before the rest are dropped
    #[arg(long, default_value_t = 1_000)]
    pub deletes: u64,
    /// Methods written per batch before waiting for the broker
    #[arg(long, default_value_t = 1_000)]
    pub batch: u64,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub(crate) fn name(s: &str) -> anyhow::Result<ShortStr> {
    match ShortStr::try_from_str(s) {
        Ok(n) => Ok(n),
        Err(_) => bail!("name longer than 255 bytes: {s}"),
    }
}

/// Waits until the broker has handled everything sent so far (a passive
/// declare is answered after all earlier methods on the channel).
async fn sync(conn: &mut Connection, queue: &str) -> anyhow::Result<()> {
    let m = Method::QueueDeclare(QueueDeclare {
        queue: name(queue)?,
        passive: true,
        ..Default::default()
    });
    match conn.rpc(1, &m).await? {
        Method::QueueDeclareOk(_) => Ok(()),
        m => bail!("expected queue.declare-ok, got {}", m.name()),
    }
}

/// Sends `methods` in batches of `batch` (all no-wait), then syncs.
pub(crate) async fn pipeline(
    conn: &mut Connection,
    batch: u64,
    sync_queue: &str,
    methods: impl Iterator<Item = anyhow::Result<Method>>,
) -> anyhow::Result<u64> {
    let mut buf = BytesMut::new();
    let (mut n, mut in_batch) = (0, 0);
    for m in methods {
        encode_method_frame(&mut buf, 1, &m?);
        n += 1;
        in_batch += 1;
        if in_batch == batch {
            conn.send_bytes(&buf).await?;
            buf.clear();
            sync(conn, sync_queue).await?;
            in_batch = 0;
        }
    }
    conn.send_bytes(&buf).await?;
    sync(conn, sync_queue).await?;
    Ok(n)
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

pub async fn run(args: TopologyArgs) -> anyhow::Result<()> {
    let uri = AmqpUri::parse(&args.uri)?;
    let mut conn = Connection::connect(&uri).await?;
    conn.open_channel(1).await?;
    let prefix = format!(
        "warren-perf-topo-{}-{}",
        std::process::id(),
        stats::now_ns()
    );
    let q = |i: u64| format!("{prefix}-q{i}");
    let (direct, topic) = (format!("{prefix}-direct"), format!("{prefix}-topic"));
    let qs = args.queues.max(1);

    // Queues.
    let t = Instant::now();
    let declare = |i: u64| -> anyhow::Result<Method> {
        Ok(Method::QueueDeclare(QueueDeclare {
            queue: name(&q(i))?,
            no_wait: true,
            ..Default::default()
        }))
    };
    conn.send(1, &declare(0)?).await?;
    pipeline(&mut conn, args.batch, &q(0), (1..qs).map(declare)).await?;
    let declare_s = t.elapsed().as_secs_f64();
    for (ex, kind) in [(&direct, "direct"), (&topic, "topic")] {
        let m = Method::ExchangeDeclare(ExchangeDeclare {
            exchange: name(ex)?,
            kind: ShortStr::from(kind),
            ..Default::default()
        });
        match conn.rpc(1, &m).await? {
            Method::ExchangeDeclareOk(_) => {}
            m => bail!("expected exchange.declare-ok, got {}", m.name()),
        }
    }

    // Bindings: direct key "k{j}" and topic pattern "t.{j}.*" for binding j,
    // spread round-robin over the queues.
    let half = args.bindings / 2;
    let t = Instant::now();
    let bind = |j: u64| -> anyhow::Result<Method> {
        let (ex, key) = if j < half {
            (&direct, format!("k{j}"))
        } else {
            (&topic, format!("t.{}.*", j - half))
        };
        Ok(Method::QueueBind(QueueBind {
            queue: name(&q(j % qs))?,
            exchange: name(ex)?,
            routing_key: name(&key)?,
            no_wait: true,
            arguments: FieldTable::new(),
            ..Default::default()
        }))
    };
    let bound = pipeline(&mut conn, args.batch, &q(0), (0..args.bindings).map(bind)).await?;
    let bind_s = t.elapsed().as_secs_f64();

    // Publishes with the topology in place: each message matches one binding.
    let mut raw = BytesMut::new();
    BasicProperties::default().encode(&mut raw);
    let mut publish_rates = Vec::new();
    for (ex, topic_keys) in [(&direct, false), (&topic, true)] {
        let t = Instant::now();
        let mut buf = BytesMut::new();
        for i in 0..args.messages {
            let j = i % half.max(1);
            let key = if topic_keys {
                format!("t.{j}.x")
            } else {
                format!("k{j}")
            };
            let p = Method::BasicPublish(BasicPublish {
                exchange: name(ex)?,
                routing_key: name(&key)?,
                ..Default::default()
            });
            encode_method_frame(&mut buf, 1, &p);
            encode_content_header_frame(&mut buf, 1, 60, 16, &raw);
            encode_body_frames(&mut buf, 1, &[b'x'; 16], conn.frame_max);
            if buf.len() >= 64 * 1024 {
                conn.send_bytes(&buf).await?;
                buf.clear();
            }
        }
        conn.send_bytes(&buf).await?;
        sync(&mut conn, &q(0)).await?;
        publish_rates.push(rate(args.messages, t.elapsed().as_secs_f64()));
    }

    // Queue deletion, one at a time (each removes its bindings).
    let deletes = args.deletes.min(qs);
    let t = Instant::now();
    for i in (qs - deletes)..qs {
        let m = Method::QueueDelete(QueueDelete {
            queue: name(&q(i))?,
            ..Default::default()
        });
        match conn.rpc(1, &m).await? {
            Method::QueueDeleteOk(_) => {}
            m => bail!("expected queue.delete-ok, got {}", m.name()),
        }
    }
    let delete_s = t.elapsed().as_secs_f64();

    // Clean up.
    for ex in [&direct, &topic] {
        let m = Method::ExchangeDelete(ExchangeDelete {
            exchange: name(ex)?,
            ..Default::default()
        });
        conn.rpc(1, &m).await?;
    }
    let rest = qs - deletes;
    if rest > 1 {
        let del = |i: u64| -> anyhow::Result<Method> {
            Ok(Method::QueueDelete(QueueDelete {
                queue: name(&q(i))?,
                no_wait: true,
                ..Default::default()
            }))
        };
        pipeline(&mut conn, args.batch, &q(0), (1..rest).map(del)).await?;
    }
    if rest > 0 {
        conn.delete_queue(1, &q(0)).await?;
    }
    conn.close().await?;

    eprintln!(
        "{qs} queues declared in {declare_s:.2}s ({:.0}/s); {bound} bindings in {bind_s:.2}s ({:.0}/s); \
         publish via direct {:.0} msg/s, via topic {:.0} msg/s; {deletes} queue deletes in {delete_s:.2}s ({:.0}/s)",
        rate(qs, declare_s),
        rate(bound, bind_s),
        publish_rates[0],
        publish_rates[1],
        rate(deletes, delete_s),
    );
    let json = Json::default()
        .str("scenario", "topology")
        .num("queues", qs as f64)
        .num("bindings", bound as f64)
        .num("declares_per_s", rate(qs, declare_s))
        .num("binds_per_s", rate(bound, bind_s))
        .num("publish_direct_per_s", publish_rates[0])
        .num("publish_topic_per_s", publish_rates[1])
        .num("deletes_per_s", rate(deletes, delete_s));
    stats::emit(json, args.json.as_deref())
}
