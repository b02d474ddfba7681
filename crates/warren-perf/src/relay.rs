//! The raw-TCP-relay baseline: what moving the same bytes from a producer socket to
//! a consumer socket through a separate process costs, with no broker logic at all.
//!
//! * `warren-perf relay` is the relay process: it accepts connections, reads a
//!   one-byte role (`S` source, `D` destination), pairs each source with the next
//!   destination and copies bytes source → destination with a plain
//!   `read` / `write_all` loop (256 KiB buffer), as a user-space broker would.
//! * `warren-perf relay-throughput` is the generator side: one source connection
//!   writes pre-encoded `basic.deliver` + content header + body frames (exactly the
//!   frames a broker sends an auto-ack consumer, batched like the producer does), one
//!   destination connection parses them with the consumer's own frame parser and
//!   counts deliveries. Same JSON fields as `throughput`.
//!
//! So the relay figure is an upper bound for any broker on this machine: the same
//! generator work on both ends, the same number of socket hops, but no frame
//! parsing, routing, queueing or re-encoding in the middle.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, parse_frame,
    BasicDeliver, BasicProperties, Method, ShortStr, CLASS_BASIC,
};
use anyhow::{bail, Context};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::consumer::ConsumerOutcome;
use crate::consumer::State;
use crate::producer::ProducerOutcome;
use crate::stats::{self, now_ns, Counters, Signal};
use crate::throughput::{summarize, RunResult};

const ROLE_SOURCE: u8 = b'S';
const ROLE_DEST: u8 = b'D';
/// The relay's copy buffer.
const COPY_BUF_BYTES: usize = 256 * 1024;
/// Same batching as the producer.
const BATCH_BYTES_MAX: usize = 128 * 1024;
const BATCH_MESSAGES_MAX: usize = 2000;
/// frame_max used to split bodies (warren and RabbitMQ both negotiate 128 KiB).
const FRAME_MAX_BYTES: u32 = 131_072;

#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Relay server: pairs sources with destinations and copies bytes.
pub async fn run_relay(args: RelayArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind((args.bind.as_str(), args.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let (src_tx, mut src_rx) = tokio::sync::mpsc::channel::<TcpStream>(16);
    let (dst_tx, mut dst_rx) = tokio::sync::mpsc::channel::<TcpStream>(16);
    tokio::spawn(async move {
        while let (Some(src), Some(dst)) = (src_rx.recv().await, dst_rx.recv().await) {
            tokio::spawn(async move {
                if let Err(e) = copy(src, dst).await {
                    eprintln!("relay: pair ended: {e:#}");
                }
            });
        }
    });
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (src_tx, dst_tx) = (src_tx.clone(), dst_tx.clone());
        tokio::spawn(async move {
            let mut role = [0u8; 1];
            if stream.read_exact(&mut role).await.is_err() {
                return;
            }
            let _ = match role[0] {
                ROLE_SOURCE => src_tx.send(stream).await,
                ROLE_DEST => dst_tx.send(stream).await,
                _ => Ok(()),
            };
        });
    }
}

async fn copy(mut src: TcpStream, mut dst: TcpStream) -> anyhow::Result<()> {
    let mut buf = vec![0u8; COPY_BUF_BYTES];
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        dst.write_all(&buf[..n]).await?;
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct RelayThroughputArgs {
    /// The relay's address (host:port)
    #[arg(long)]
    pub addr: String,
    /// Message body size in bytes
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Seconds to run
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Also write the JSON summary to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The frames a broker sends an auto-ack consumer for one message.
fn encode_delivery(size: usize) -> anyhow::Result<(Vec<u8>, Option<usize>)> {
    let mut b = BytesMut::new();
    let deliver = Method::BasicDeliver(BasicDeliver {
        // Same length as a typical generated tag and queue name.
        consumer_tag: ShortStr::try_from_str("amq.ctag-warren-perf-relay-000001").context("tag")?,
        delivery_tag: 1,
        redelivered: false,
        exchange: ShortStr::try_from_str("").context("exchange")?,
        routing_key: ShortStr::try_from_str("warren-perf-12345-1234567890123-0")
            .context("routing key")?,
    });
    encode_method_frame(&mut b, 1, &deliver);
    let props = BasicProperties {
        delivery_mode: Some(1),
        ..Default::default()
    };
    encode_content_header_frame(&mut b, 1, CLASS_BASIC, size as u64, &props.to_bytes());
    let body_at = b.len() + 7;
    encode_body_frames(&mut b, 1, &vec![0x2a_u8; size], FRAME_MAX_BYTES);
    Ok((b.to_vec(), (size >= 8).then_some(body_at)))
}

pub async fn run_throughput(args: RelayThroughputArgs) -> anyhow::Result<()> {
    let (template, ts_at) = encode_delivery(args.size)?;
    let mut src = TcpStream::connect(&args.addr)
        .await
        .with_context(|| format!("connecting to relay {}", args.addr))?;
    src.set_nodelay(true)?;
    src.write_all(&[ROLE_SOURCE]).await?;
    let mut dst = TcpStream::connect(&args.addr).await?;
    dst.set_nodelay(true)?;
    dst.write_all(&[ROLE_DEST]).await?;

    let counters = Arc::new(Counters::default());
    let (stop_tx, stop) = Signal::new();
    let reporter = tokio::spawn(stats::report(counters.clone(), stop.clone()));

    let c = counters.clone();
    let mut rstop = stop.clone();
    let receiver = tokio::spawn(async move {
        let mut state = State::new(false);
        let mut buf = BytesMut::with_capacity(256 * 1024);
        loop {
            let before = state.received();
            while let Some(f) = parse_frame(&mut buf, FRAME_MAX_BYTES + 8)? {
                state.on_frame(f.kind, &f.payload)?;
            }
            c.received.fetch_add(state.received() - before, Relaxed);
            buf.reserve(256 * 1024);
            tokio::select! {
                r = dst.read_buf(&mut buf) => if r? == 0 { bail!("relay closed the destination") },
                _ = rstop.wait() => break,
            }
        }
        anyhow::Ok(state.received())
    });

    let c = counters.clone();
    let mut wstop = stop.clone();
    let sender = tokio::spawn(async move {
        let per_batch = (BATCH_BYTES_MAX / template.len()).clamp(1, BATCH_MESSAGES_MAX);
        let mut buf = Vec::with_capacity(per_batch * template.len());
        let mut sent = 0u64;
        while !wstop.is_set() {
            buf.clear();
            let ts = now_ns().to_be_bytes();
            for _ in 0..per_batch {
                let at = buf.len();
                buf.extend_from_slice(&template);
                if let Some(off) = ts_at {
                    buf[at + off..at + off + 8].copy_from_slice(&ts);
                }
            }
            tokio::select! {
                r = src.write_all(&buf) => r?,
                _ = wstop.wait() => break,
            }
            sent += per_batch as u64;
            c.published.fetch_add(per_batch as u64, Relaxed);
        }
        anyhow::Ok(sent)
    });

    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let _ = stop_tx.send(true);
    let samples = reporter.await?;
    let published = sender.await.context("sender panicked")??;
    let received = receiver.await.context("receiver panicked")??;
    let result = RunResult {
        samples,
        producers: vec![ProducerOutcome {
            published,
            ..Default::default()
        }],
        consumers: vec![ConsumerOutcome {
            received,
            ..Default::default()
        }],
    };
    let json = summarize("relay-throughput", &result).num("size", args.size as f64);
    stats::emit(json, args.json.as_deref())
}
