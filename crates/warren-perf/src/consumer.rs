//! The consuming hot loop: one task per consumer connection parses every frame in
//! each read, counts completed deliveries and acks with `multiple` every N.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use amqp_codec::{BasicAck, Method, FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use anyhow::{bail, Context};
use bytes::{BufMut, BytesMut};

use crate::client::{check_close, method_frame, Connection, Reader, Writer, CLOSE_TIMEOUT};
use crate::stats::{now_ns, Counters, Signal};

/// The channel every consumer consumes on.
const CHANNEL: u16 = 1;
/// Latency samples kept per consumer (bounds memory of long latency runs).
const LATENCY_SAMPLES_MAX: usize = 10_000_000;

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AckMode {
    /// `no-ack` consumer.
    Auto,
    /// `basic.ack` with `multiple` once every N deliveries (N = 1: one ack each).
    Multiple(u32),
}

/// What one consumer does.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub queue: String,
    /// `basic.qos` prefetch count (manual ack only; 0 = unlimited).
    pub prefetch: u16,
    pub ack: AckMode,
    /// Stop after this many deliveries.
    pub expect: Option<u64>,
    /// Keep publish→deliver latencies (bodies must carry a timestamp).
    pub record_latency: bool,
}

/// What one consumer did.
#[derive(Debug, Default)]
pub struct ConsumerOutcome {
    pub received: u64,
    /// Publish→deliver latencies in nanoseconds (when recorded).
    pub latencies_ns: Vec<u64>,
}

/// Where the consumer is within a delivery (method → header → body frames).
enum Expect {
    Method,
    Header,
    Body { remaining: u64, first: bool },
}

/// Runs one consumer on an already open connection until `stop` (or `expect`).
pub async fn run(
    mut conn: Connection,
    cfg: ConsumerConfig,
    counters: Arc<Counters>,
    mut stop: Signal,
) -> anyhow::Result<ConsumerOutcome> {
    conn.open_channel(CHANNEL).await?;
    let ack_every = match cfg.ack {
        AckMode::Auto => None,
        AckMode::Multiple(n) => {
            conn.qos(CHANNEL, cfg.prefetch).await?;
            // Acking less often than half the prefetch would stall the consumer.
            let cap = if cfg.prefetch == 0 {
                u32::MAX
            } else {
                (u32::from(cfg.prefetch) / 2).max(1)
            };
            Some(u64::from(n.clamp(1, cap)))
        }
    };
    conn.consume(CHANNEL, &cfg.queue, ack_every.is_none())
        .await?;
    let (mut reader, mut writer) = conn.into_split();
    let mut state = State {
        expect: Expect::Method,
        last_tag: 0,
        unacked: 0,
        out: ConsumerOutcome::default(),
        record: cfg.record_latency,
    };
    let mut acks = BytesMut::with_capacity(4096);
    loop {
        let before = state.out.received;
        while let Some(f) = reader.try_frame()? {
            state.on_frame(f.kind, &f.payload)?;
            if let Some(n) = ack_every {
                if state.unacked >= n {
                    push_ack(&mut acks, state.last_tag);
                    state.unacked = 0;
                }
            }
        }
        counters
            .received
            .fetch_add(state.out.received - before, Relaxed);
        if !acks.is_empty() {
            writer.write_all(&acks).await?;
            acks.clear();
        }
        if cfg.expect.is_some_and(|e| state.out.received >= e) {
            break;
        }
        tokio::select! {
            r = reader.fill() => r?,
            _ = stop.wait() => break,
        }
    }
    if state.unacked > 0 {
        push_ack(&mut acks, state.last_tag);
        writer.write_all(&acks).await?;
    }
    close(&mut reader, &mut writer).await?;
    Ok(state.out)
}

async fn close(reader: &mut Reader, writer: &mut Writer) -> anyhow::Result<()> {
    writer.send_close().await?;
    tokio::time::timeout(CLOSE_TIMEOUT, reader.drain_until_close_ok())
        .await
        .context("timed out waiting for connection.close-ok")?
}

fn push_ack(buf: &mut BytesMut, tag: u64) {
    let ack = Method::BasicAck(BasicAck {
        delivery_tag: tag,
        multiple: true,
    });
    buf.put_slice(&method_frame(CHANNEL, &ack));
}

/// Per-consumer parse state (also used by the `relay` baseline's receiver).
pub(crate) struct State {
    expect: Expect,
    /// Delivery tag of the latest `basic.deliver`.
    last_tag: u64,
    /// Deliveries since the last ack.
    unacked: u64,
    out: ConsumerOutcome,
    record: bool,
}

impl State {
    /// A parser at the start of a delivery; `record` keeps latency samples.
    pub(crate) fn new(record: bool) -> State {
        State {
            expect: Expect::Method,
            last_tag: 0,
            unacked: 0,
            out: ConsumerOutcome::default(),
            record,
        }
    }

    /// Completed deliveries so far.
    pub(crate) fn received(&self) -> u64 {
        self.out.received
    }

    pub(crate) fn on_frame(&mut self, kind: u8, payload: &bytes::Bytes) -> anyhow::Result<()> {
        match (kind, &self.expect) {
            (FRAME_METHOD, Expect::Method) => {
                if let Some(tag) = deliver_tag(payload) {
                    self.last_tag = tag;
                    self.expect = Expect::Header;
                    return Ok(());
                }
                match check_close(Method::decode(payload.clone())?)? {
                    Method::BasicCancel(_) => bail!("broker cancelled the consumer"),
                    Method::BasicDeliver(_) => bail!("malformed basic.deliver"),
                    _ => Ok(()),
                }
            }
            (FRAME_HEADER, Expect::Header) => {
                let size = payload
                    .get(4..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .context("content header too short")?;
                if size == 0 {
                    self.complete(None);
                } else {
                    self.expect = Expect::Body {
                        remaining: size,
                        first: true,
                    };
                }
                Ok(())
            }
            (FRAME_BODY, Expect::Body { remaining, first }) => {
                let len = payload.len() as u64;
                if len > *remaining {
                    bail!("body frame larger than the announced body size");
                }
                let remaining = remaining - len;
                let stamp = if *first && self.record {
                    payload
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                } else {
                    None
                };
                if remaining == 0 {
                    self.complete(stamp);
                } else {
                    self.expect = Expect::Body {
                        remaining,
                        first: false,
                    };
                    if let Some(s) = stamp {
                        self.sample(s);
                    }
                }
                Ok(())
            }
            (FRAME_METHOD, _) => bail!("method frame in the middle of a delivery"),
            (FRAME_HEADER | FRAME_BODY, _) => bail!("unexpected content frame"),
            _ => Ok(()), // heartbeats
        }
    }

    fn complete(&mut self, stamp: Option<u64>) {
        self.expect = Expect::Method;
        self.out.received += 1;
        self.unacked += 1;
        if let Some(s) = stamp {
            self.sample(s);
        }
    }

    fn sample(&mut self, sent_ns: u64) {
        if self.out.latencies_ns.len() < LATENCY_SAMPLES_MAX {
            self.out.latencies_ns.push(now_ns().saturating_sub(sent_ns));
        }
    }
}

/// The delivery tag if `payload` is a `basic.deliver` (fast path: no allocation,
/// no full decode; `None` for anything else or a malformed one).
fn deliver_tag(payload: &[u8]) -> Option<u64> {
    if payload.get(..4)? != [0, 60, 0, 60] {
        return None;
    }
    let tag_len = usize::from(*payload.get(4)?);
    let at = 5 + tag_len;
    payload
        .get(at..at + 8)?
        .try_into()
        .ok()
        .map(u64::from_be_bytes)
}
