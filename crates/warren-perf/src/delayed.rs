//! `delayed`: publish N messages to an `x-delayed-message` exchange with
//! delays spread evenly over a window, then consume them and report lateness
//! (receive time - due time) percentiles in ms. Every body carries its due
//! time (wall-clock ms), so lateness needs no shared state. This is the
//! benchmark row "100k pending, then delivered on time: lateness p99".

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, BasicProperties,
    BasicPublish, ExchangeDeclare, FieldTable, FieldValue, Method, QueueBind, ShortStr, FRAME_BODY,
    FRAME_HEADER, FRAME_METHOD,
};
use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};

use crate::client::Connection;
use crate::stats::{self, percentile, Json};
use crate::throughput::FlowArgs;
use crate::uri::AmqpUri;

/// Publish frames buffered before one socket write, in bytes (small, so the
/// due time stamped in a body at encoding is close to when the broker sees it).
const PUBLISH_BATCH_BYTES: usize = 16 * 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct DelayedArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Messages to publish
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Shortest delay, in ms (the first message)
    #[arg(long, default_value_t = 2_000)]
    pub delay_min_ms: u64,
    /// Window the delays are spread over, in ms (the last message's delay is
    /// delay_min_ms + window_ms)
    #[arg(long, default_value_t = 10_000)]
    pub window_ms: u64,
    /// Seconds to wait past the last due time for stragglers
    #[arg(long, default_value_t = 30)]
    pub grace_s: u64,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn short(s: &str) -> anyhow::Result<ShortStr> {
    ShortStr::try_from_str(s).context("name longer than 255 bytes")
}

pub async fn run(args: DelayedArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be positive");
    }
    let uri = AmqpUri::parse(&args.flow.uri)?;
    let queue = args.flow.queue_names(1).remove(0);
    let exchange = format!("{queue}.delayed");
    let mut admin = Connection::connect(&uri)
        .await
        .context("admin connection")?;
    admin.open_channel(1).await?;
    let mut xargs = FieldTable::new();
    xargs.insert(
        ShortStr::from("x-delayed-type"),
        FieldValue::LongStr(Bytes::from_static(b"direct")),
    );
    let declare = Method::ExchangeDeclare(ExchangeDeclare {
        exchange: short(&exchange)?,
        kind: ShortStr::from("x-delayed-message"),
        durable: args.flow.durable_queue,
        arguments: xargs,
        ..Default::default()
    });
    match admin.rpc(1, &declare).await? {
        Method::ExchangeDeclareOk(_) => {}
        m => bail!("expected exchange.declare-ok, got {}", m.name()),
    }
    admin
        .declare_queue(1, &queue, args.flow.durable_queue)
        .await?;
    let bind = Method::QueueBind(QueueBind {
        queue: short(&queue)?,
        exchange: short(&exchange)?,
        routing_key: ShortStr::from("k"),
        ..Default::default()
    });
    match admin.rpc(1, &bind).await? {
        Method::QueueBindOk(_) => {}
        m => bail!("expected queue.bind-ok, got {}", m.name()),
    }

    // Consumer first, so nothing waits in the queue.
    let mut cons = Connection::connect(&uri)
        .await
        .context("consumer connection")?;
    cons.open_channel(1).await?;
    cons.consume(1, &queue, true).await?;
    let (mut reader, _writer) = cons.into_split();
    let count = args.count;
    let deadline_ms = wall_ms() + args.delay_min_ms + args.window_ms + args.grace_s * 1000;
    let consumer = tokio::spawn(async move {
        let mut late_ms: Vec<i64> = Vec::with_capacity(count as usize);
        let mut expect_body = false;
        while (late_ms.len() as u64) < count && wall_ms() < deadline_ms {
            while let Some(f) = reader.try_frame()? {
                match f.kind {
                    FRAME_METHOD => {
                        expect_body = matches!(Method::decode(f.payload)?, Method::BasicDeliver(_))
                    }
                    FRAME_HEADER => {}
                    FRAME_BODY if expect_body => {
                        expect_body = false;
                        if let Some(b) = f.payload.get(..8) {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(b);
                            let due = u64::from_le_bytes(a);
                            late_ms.push(wall_ms() as i64 - due as i64);
                        }
                    }
                    _ => {}
                }
            }
            if late_ms.len() as u64 >= count {
                break; // all in: do not wait in fill() until the deadline
            }
            let left = Duration::from_millis(deadline_ms.saturating_sub(wall_ms()).max(1));
            if tokio::time::timeout(left, reader.fill()).await.is_err() {
                break;
            }
        }
        anyhow::Ok(late_ms)
    });

    // Publisher: delays spread evenly; body = due time (LE) + padding.
    let mut publ = Connection::connect(&uri)
        .await
        .context("publisher connection")?;
    publ.open_channel(1).await?;
    let frame_max = publ.frame_max;
    let (_r, mut w) = publ.into_split();
    let size = args.flow.size.max(8);
    let started = Instant::now();
    let mut buf = BytesMut::with_capacity(PUBLISH_BATCH_BYTES * 2);
    let publish = Method::BasicPublish(BasicPublish {
        exchange: short(&exchange)?,
        routing_key: ShortStr::from("k"),
        ..Default::default()
    });
    let base = wall_ms();
    for i in 0..count {
        let delay = args.delay_min_ms + args.window_ms * i / count.max(1);
        // Due time as the broker computes it (from its receive time, which is
        // at or after `now`): lateness is measured against this lower bound.
        let now = wall_ms().max(base);
        let mut headers = FieldTable::new();
        headers.insert(ShortStr::from("x-delay"), FieldValue::I64(delay as i64));
        let props = BasicProperties {
            headers: Some(headers),
            delivery_mode: Some(if args.flow.persistent { 2 } else { 1 }),
            ..Default::default()
        };
        let mut body = vec![0u8; size];
        body[..8].copy_from_slice(&(now + delay).to_le_bytes());
        encode_method_frame(&mut buf, 1, &publish);
        encode_content_header_frame(&mut buf, 1, 60, body.len() as u64, &props.to_bytes());
        encode_body_frames(&mut buf, 1, &body, frame_max);
        if buf.len() >= PUBLISH_BATCH_BYTES {
            w.write_all(&buf).await?;
            buf.clear();
        }
    }
    w.write_all(&buf).await?;
    let publish_s = started.elapsed().as_secs_f64();
    let mut late = consumer.await.context("consumer task")??;
    let received = late.len();
    late.sort_unstable();
    let early = late.iter().filter(|l| **l < 0).count();
    let as_u: Vec<u64> = late.iter().map(|l| (*l).max(0) as u64).collect();
    let p = |q| percentile(&as_u, q) as f64;
    eprintln!(
        "delayed: {received}/{count} received, published in {publish_s:.2}s; lateness ms p50 {} p99 {} max {} ({early} early)",
        p(50.0),
        p(99.0),
        p(100.0)
    );
    let json = Json::default()
        .str("scenario", "delayed")
        .num("count", count as f64)
        .num("received", received as f64)
        .num("early", early as f64)
        .num("publish_s", publish_s)
        .num("lateness_p50_ms", p(50.0))
        .num("lateness_p99_ms", p(99.0))
        .num("lateness_max_ms", p(100.0));
    stats::emit(json, args.flow.json.as_deref())
}
