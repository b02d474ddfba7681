//! Per-object histories for `*_details.samples` of queues, exchanges,
//! connections and channels. Kept only for objects a request asked samples
//! for (`lengths_age`, `msg_rates_age`, `data_rates_age`): asking watches
//! the object, each published snapshot then appends one point to its ring,
//! and an object not asked for in `WATCH_IDLE_MS`, or gone from the
//! snapshot, is forgotten. Memory per watched object: its key and at most
//! `SAMPLES_PER_OBJECT_MAX` points of `size_of::<Point>()` = 104 bytes
//! (12.5 KiB); at most `WATCHED_OBJECTS_MAX` objects (6.4 MiB in all).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use amqp_codec::ShortStr;
use broker_core::inspect::{ChannelView, ConnView, ExchangeView, QueueView, Snapshot};
use broker_core::ConnId;

use crate::stats::HISTORY_SAMPLES_MAX;
use crate::views::{self, Counter};

/// Points kept per watched object (as the overview's history).
pub const SAMPLES_PER_OBJECT_MAX: usize = HISTORY_SAMPLES_MAX;
/// Objects watched at once; more are answered with their current value
/// only (one sample).
pub const WATCHED_OBJECTS_MAX: usize = 512;
/// An object whose samples nobody asked for in this long stops being
/// watched (ms of snapshot time).
pub const WATCH_IDLE_MS: u64 = 600_000;
/// Series per point: the most any kind has (a queue: 3 lengths and 9
/// message counters).
pub const SERIES_MAX: usize = 12;

/// Which object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjKey {
    /// A queue (vhost, name).
    Queue(Arc<str>, ShortStr),
    /// An exchange (vhost, name).
    Exchange(Arc<str>, ShortStr),
    /// A connection.
    Conn(ConnId),
    /// A channel (connection, number).
    Channel(ConnId, u16),
}

/// One object's counters at one snapshot, in the order of its counter
/// tables (`views::queue_lengths` then `queue_counters`; the others one
/// table each); unused slots are 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    /// The snapshot's time, ms since the epoch.
    pub at_ms: u64,
    /// The values.
    pub v: [u64; SERIES_MAX],
}

impl Point {
    fn of(at_ms: u64, tables: &[&[Counter]]) -> Point {
        let mut p = Point {
            at_ms,
            ..Default::default()
        };
        let values = tables.iter().flat_map(|t| t.iter().map(|(_, n, _)| *n));
        for (slot, n) in p.v.iter_mut().zip(values) {
            *slot = n;
        }
        p
    }

    /// A queue's point.
    pub fn queue(at_ms: u64, q: &QueueView) -> Point {
        Point::of(
            at_ms,
            &[
                &views::queue_lengths(q, None),
                &views::queue_counters(q, None),
            ],
        )
    }

    /// An exchange's point (zeros while it shows no `message_stats`).
    pub fn exchange(at_ms: u64, x: &ExchangeView) -> Point {
        let t = views::exchange_counters(x, true, None);
        Point::of(at_ms, &[t.as_ref().map_or(&[][..], |t| &t[..])])
    }

    /// A connection's point.
    pub fn conn(at_ms: u64, c: &ConnView) -> Point {
        Point::of(at_ms, &[&views::conn_counters(c, None)])
    }

    /// A channel's point.
    pub fn channel(at_ms: u64, ch: &ChannelView) -> Point {
        let t = views::channel_counters(ch, None);
        Point::of(at_ms, &[t.as_ref().map_or(&[][..], |t| &t[..])])
    }
}

/// A watched object's ring.
#[derive(Debug, Default)]
struct Ring {
    /// Oldest first, at most `SAMPLES_PER_OBJECT_MAX`.
    points: VecDeque<Point>,
    /// Snapshot time of the last request for it.
    asked_at_ms: u64,
    /// Seen in the snapshot being published (objects gone are dropped).
    seen: bool,
}

impl Ring {
    fn push(&mut self, p: Point) {
        if self.points.back().is_some_and(|b| b.at_ms >= p.at_ms) {
            return;
        }
        if self.points.len() == SAMPLES_PER_OBJECT_MAX {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }
}

/// The watched objects and their rings.
#[derive(Debug, Default)]
pub struct ObjHistory {
    /// At most `WATCHED_OBJECTS_MAX`.
    rings: HashMap<ObjKey, Ring>,
}

impl ObjHistory {
    /// The history of `key` (oldest first), watching it from now on;
    /// `now` is its point in the current snapshot.
    pub fn asked(&mut self, key: ObjKey, now: Point) -> Vec<Point> {
        if !self.rings.contains_key(&key) && self.rings.len() >= WATCHED_OBJECTS_MAX {
            return vec![now];
        }
        let ring = self.rings.entry(key).or_default();
        ring.asked_at_ms = now.at_ms;
        ring.push(now);
        ring.points.iter().copied().collect()
    }

    /// Appends the new snapshot's point of every watched object; forgets
    /// those gone or not asked for in `WATCH_IDLE_MS`. O(objects) when any
    /// is watched, nothing otherwise.
    pub fn publish(&mut self, s: &Snapshot) {
        if self.rings.is_empty() {
            return;
        }
        let at = s.taken_at_ms;
        let mut add = |key: ObjKey, p: &dyn Fn() -> Point| {
            if let Some(r) = self.rings.get_mut(&key) {
                r.seen = true;
                r.push(p());
            }
        };
        for q in &s.queues {
            add(ObjKey::Queue(q.vhost.clone(), q.name.clone()), &|| {
                Point::queue(at, q)
            });
        }
        for x in &s.exchanges {
            add(ObjKey::Exchange(x.vhost.clone(), x.name.clone()), &|| {
                Point::exchange(at, x)
            });
        }
        for c in &s.connections {
            add(ObjKey::Conn(c.id), &|| Point::conn(at, c));
        }
        for ch in &s.channels {
            add(ObjKey::Channel(ch.conn, ch.number), &|| {
                Point::channel(at, ch)
            });
        }
        self.rings.retain(|_, r| {
            let keep = r.seen && at.saturating_sub(r.asked_at_ms) < WATCH_IDLE_MS;
            r.seen = false;
            keep
        });
    }

    /// Objects watched (tests).
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.rings.len()
    }
}
