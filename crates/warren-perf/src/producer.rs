//! The publishing hot loop: a pre-encoded message (method + header + body frames)
//! is copied into a batch buffer many times and written with one `write`; a second
//! task reads confirms and opens the window again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, BasicProperties,
    BasicPublish, Method, ShortStr, CLASS_BASIC, FRAME_METHOD,
};
use anyhow::{bail, Context};
use bytes::BytesMut;
use tokio::sync::Notify;

use crate::client::{check_close, Connection, Reader, CLOSE_TIMEOUT};
use crate::stats::{now_ns, Counters, Signal};

/// The channel every producer publishes on.
const CHANNEL: u16 = 1;
/// Upper bound of one write, so a batch stays cache- and socket-buffer-friendly.
const BATCH_BYTES_MAX: usize = 128 * 1024;
/// Upper bound of messages per batch (also bounds latency of the counters).
const BATCH_MESSAGES_MAX: u64 = 2000;
/// Largest confirm window accepted (the tracker keeps one flag per outstanding tag).
pub const CONFIRM_WINDOW_MAX: u64 = 1 << 20;

/// What one producer does.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Exchange to publish to ("" = default exchange).
    pub exchange: String,
    /// Routing key (the queue name with the default exchange).
    pub routing_key: String,
    /// Body size in bytes; bodies of 8 bytes or more carry a send timestamp.
    pub size_bytes: usize,
    /// delivery-mode 2.
    pub persistent: bool,
    /// Publisher confirms with at most this many unconfirmed messages.
    pub confirm_window: Option<u64>,
    /// Messages per second (0 = as fast as possible).
    pub rate_per_s: f64,
    /// Stop after this many messages (and wait for their confirms).
    pub count: Option<u64>,
    /// Publish with priorities cycling 0..N-1 (for a queue declared with
    /// `x-max-priority` N); `None` sends no priority property.
    pub priorities: Option<u8>,
}

/// What one producer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProducerOutcome {
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
}

/// Confirm progress shared between the publishing task and the confirm reader.
#[derive(Default)]
struct Window {
    /// Messages written (the highest delivery tag handed to the socket).
    published: AtomicU64,
    /// Messages acked or nacked.
    settled: AtomicU64,
    /// Messages nacked.
    nacked: AtomicU64,
    /// Wakes the publisher when `settled` moves.
    moved: Notify,
}

/// A connection whose publishing channel is open (and in confirm mode if asked).
pub struct Prepared(Connection);

/// Opens the publishing channel; separate from [`run`] so that a run can open every
/// connection before any load begins (a broker busy with the first producer must
/// not skew, or starve, the setup of the others).
pub async fn prepare(mut conn: Connection, cfg: &ProducerConfig) -> anyhow::Result<Prepared> {
    conn.open_channel(CHANNEL).await?;
    if cfg.confirm_window.is_some() {
        conn.confirm_select(CHANNEL).await?;
    }
    Ok(Prepared(conn))
}

/// Publishes until `stop` (or `count`).
pub async fn run(
    Prepared(conn): Prepared,
    cfg: ProducerConfig,
    counters: Arc<Counters>,
    mut stop: Signal,
) -> anyhow::Result<ProducerOutcome> {
    let template = encode_message(&cfg, conn.frame_max)?;
    let (reader, mut writer) = conn.into_split();
    let window = Arc::new(Window::default());
    let confirms = tokio::spawn(read_confirms(reader, window.clone(), counters.clone()));

    let per_batch = ((BATCH_BYTES_MAX / template.bytes.len()) as u64).clamp(1, BATCH_MESSAGES_MAX);
    let mut buf = BytesMut::with_capacity(BATCH_BYTES_MAX + template.bytes.len());
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        if stop.is_set() || cfg.count.is_some_and(|c| sent >= c) {
            break;
        }
        let mut n = per_batch;
        if let Some(c) = cfg.count {
            n = n.min(c - sent);
        }
        if let Some(w) = cfg.confirm_window {
            let Some(room) = wait_for_room(&window, w, sent, &mut stop).await else {
                break;
            };
            n = n.min(room);
        }
        if cfg.rate_per_s > 0.0 {
            let due = (cfg.rate_per_s * start.elapsed().as_secs_f64()) as u64;
            if due <= sent {
                let next = Duration::from_secs_f64((sent + 1) as f64 / cfg.rate_per_s);
                let at = tokio::time::Instant::from_std(start + next);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = stop.wait() => break,
                }
                continue;
            }
            n = n.min(due - sent);
        }
        buf.clear();
        let ts = now_ns().to_be_bytes();
        for i in 0..n {
            let at = buf.len();
            buf.extend_from_slice(&template.bytes);
            if let Some(off) = template.timestamp_at {
                buf[at + off..at + off + 8].copy_from_slice(&ts);
            }
            if let (Some(off), Some(levels)) = (template.priority_at, cfg.priorities) {
                buf[at + off] = ((sent + i) % u64::from(levels.max(1))) as u8;
            }
        }
        sent += n;
        window.published.store(sent, Relaxed);
        tokio::select! {
            r = writer.write_all(&buf) => r?,
            // A write blocked by broker flow control cannot be resumed half-way;
            // dropping the connection is the only clean way out.
            _ = stop.wait() => { confirms.abort(); return Ok(outcome(sent, &window)); }
        }
        counters.published.fetch_add(n, Relaxed);
    }
    if cfg.count.is_some() && cfg.confirm_window.is_some() {
        // Finite runs wait for every confirm: that is what "published" means there.
        while window.settled.load(Relaxed) < sent {
            if wait_for_room(&window, 1, sent, &mut stop).await.is_none() {
                break;
            }
        }
    }
    writer.send_close().await?;
    match tokio::time::timeout(CLOSE_TIMEOUT, confirms).await {
        Ok(joined) => joined.context("confirm reader panicked")??,
        Err(_) => bail!("timed out waiting for connection.close-ok"),
    }
    Ok(outcome(sent, &window))
}

fn outcome(sent: u64, w: &Window) -> ProducerOutcome {
    let nacked = w.nacked.load(Relaxed);
    ProducerOutcome {
        published: sent,
        confirmed: w.settled.load(Relaxed) - nacked,
        nacked,
    }
}

/// Waits until fewer than `window` messages are unconfirmed; returns the free room,
/// or `None` if stopped first.
async fn wait_for_room(w: &Window, window: u64, sent: u64, stop: &mut Signal) -> Option<u64> {
    loop {
        let outstanding = sent - w.settled.load(Relaxed).min(sent);
        if outstanding < window {
            return Some(window - outstanding);
        }
        tokio::select! {
            _ = w.moved.notified() => {}
            _ = stop.wait() => return None,
        }
    }
}

/// A message encoded once, copied per publish.
struct Template {
    bytes: Vec<u8>,
    /// Offset of the 8-byte timestamp in `bytes` (bodies of at least 8 bytes).
    timestamp_at: Option<usize>,
    /// Offset of the priority property's byte in `bytes` (when cycling priorities).
    priority_at: Option<usize>,
}

fn encode_message(cfg: &ProducerConfig, frame_max: u32) -> anyhow::Result<Template> {
    let mut b = BytesMut::new();
    let publish = Method::BasicPublish(BasicPublish {
        reserved_1: 0,
        exchange: ShortStr::try_from_str(&cfg.exchange).context("exchange name too long")?,
        routing_key: ShortStr::try_from_str(&cfg.routing_key).context("routing key too long")?,
        mandatory: false,
        immediate: false,
    });
    encode_method_frame(&mut b, CHANNEL, &publish);
    let props = BasicProperties {
        delivery_mode: Some(if cfg.persistent { 2 } else { 1 }),
        priority: cfg.priorities.map(|_| 0),
        ..Default::default()
    };
    let raw = props.to_bytes();
    // Frame header (7), class, weight, body size (12), flags (2), then
    // delivery-mode (1) and priority: the two present properties.
    let priority_at = cfg.priorities.map(|_| b.len() + 7 + 12 + 2 + 1);
    encode_content_header_frame(&mut b, CHANNEL, CLASS_BASIC, cfg.size_bytes as u64, &raw);
    let body_at = b.len() + 7;
    let body = vec![0x2a_u8; cfg.size_bytes];
    encode_body_frames(&mut b, CHANNEL, &body, frame_max);
    Ok(Template {
        bytes: b.to_vec(),
        timestamp_at: (cfg.size_bytes >= 8).then_some(body_at),
        priority_at,
    })
}

/// Reads acks/nacks until `connection.close-ok`.
async fn read_confirms(
    mut reader: Reader,
    window: Arc<Window>,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let mut tracker = Tracker::default();
    loop {
        reader.fill().await?;
        let (mut acked, mut nacked) = (0, 0);
        while let Some(f) = reader.try_frame()? {
            if f.kind != FRAME_METHOD {
                continue;
            }
            let published = window.published.load(Relaxed);
            match check_close(Method::decode(f.payload)?)? {
                Method::BasicAck(a) => {
                    acked += tracker.settle(a.delivery_tag, a.multiple, published)?
                }
                Method::BasicNack(n) => {
                    nacked += tracker.settle(n.delivery_tag, n.multiple, published)?
                }
                Method::ConnectionCloseOk(_) => return Ok(()),
                _ => {}
            }
        }
        if acked + nacked > 0 {
            counters.confirmed.fetch_add(acked, Relaxed);
            counters.nacked.fetch_add(nacked, Relaxed);
            window.nacked.fetch_add(nacked, Relaxed);
            window.settled.fetch_add(acked + nacked, Relaxed);
            window.moved.notify_one();
        }
    }
}

/// Which delivery tags are settled: a flag per tag from the lowest unsettled one.
#[derive(Default)]
struct Tracker {
    /// Lowest delivery tag not yet settled, minus one.
    base: u64,
    /// `settled[i]` is the state of tag `base + 1 + i`.
    settled: VecDeque<bool>,
}

impl Tracker {
    /// Marks `tag` (and all below it if `multiple`); returns how many were newly settled.
    fn settle(&mut self, tag: u64, multiple: bool, published: u64) -> anyhow::Result<u64> {
        // `multiple` with tag 0 means "everything so far".
        let tag = if multiple && tag == 0 { published } else { tag };
        if tag > published || tag == 0 {
            bail!("broker confirmed delivery tag {tag} but only {published} were published");
        }
        if tag <= self.base {
            return Ok(0);
        }
        let idx = (tag - self.base - 1) as usize;
        if idx >= self.settled.len() {
            self.settled.resize(idx + 1, false);
        }
        let mut newly = 0;
        let range = if multiple { 0..=idx } else { idx..=idx };
        for i in range {
            if let Some(s) = self.settled.get_mut(i) {
                if !*s {
                    *s = true;
                    newly += 1;
                }
            }
        }
        while self.settled.front() == Some(&true) {
            self.settled.pop_front();
            self.base += 1;
        }
        Ok(newly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_each_tag_once() {
        let mut t = Tracker::default();
        assert_eq!(t.settle(2, false, 10).unwrap(), 1);
        assert_eq!(t.settle(3, true, 10).unwrap(), 2);
        assert_eq!(t.settle(3, true, 10).unwrap(), 0);
        assert_eq!(t.base, 3);
        assert_eq!(t.settle(10, true, 10).unwrap(), 7);
        assert!(t.settle(11, false, 10).is_err());
    }
}
