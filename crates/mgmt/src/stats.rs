//! The published snapshot and what rates need: the previous snapshot's
//! counters, and a short history of the overview's totals for `samples`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use amqp_codec::ShortStr;
use arc_swap::ArcSwap;
use broker_core::inspect::{ChannelView, ConnView, ExchangeView, QueueView, Snapshot};
use broker_core::ConnId;
use std::sync::Mutex;

use crate::obj_history::{ObjHistory, ObjKey, Point};

/// Overview samples kept for `*_details.samples` (at the default 5 s
/// period: 10 minutes).
pub const HISTORY_SAMPLES_MAX: usize = 120;

/// Rates are computed over at least this interval (when a snapshot is
/// taken early, after an API write, the older base is kept).
pub const RATE_INTERVAL_MS_MIN: u64 = 1_000;

/// Totals of one snapshot, kept in the history.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Ready + unacked messages.
    pub messages: u64,
    pub ready: u64,
    pub unacked: u64,
    /// Sum of queue `publish`.
    pub publish: u64,
    /// Sum of deliveries and gets.
    pub deliver_get: u64,
    /// Sum of acks.
    pub ack: u64,
    /// Sum of redeliveries.
    pub redeliver: u64,
}

impl Totals {
    fn of(s: &Snapshot) -> Totals {
        let mut t = Totals {
            at_ms: s.taken_at_ms,
            ..Default::default()
        };
        for q in &s.queues {
            t.ready += q.ready;
            t.unacked += q.unacked;
            t.publish += q.stats.publish;
            t.deliver_get +=
                q.stats.deliver + q.stats.deliver_no_ack + q.stats.get + q.stats.get_no_ack;
            t.ack += q.stats.ack;
            t.redeliver += q.stats.redeliver;
        }
        t.messages = t.ready + t.unacked;
        t
    }
}

/// One published state: the snapshot and the one before it.
#[derive(Debug, Default)]
pub struct Published {
    /// The newest snapshot.
    pub now: Arc<Snapshot>,
    /// The one before (rates are differences), indexed.
    pub prev: Prev,
}

/// The previous snapshot with its objects indexed, so a list of n objects
/// finds each one's previous counters in O(1) (built once per publish,
/// outside the core lock).
#[derive(Debug, Default)]
pub struct Prev {
    /// The snapshot, if any.
    pub snap: Option<Arc<Snapshot>>,
    queue_at: HashMap<(Arc<str>, ShortStr), usize>,
    exchange_at: HashMap<(Arc<str>, ShortStr), usize>,
    conn_at: HashMap<ConnId, usize>,
    channel_at: HashMap<(ConnId, u16), usize>,
}

impl Prev {
    fn of(snap: Arc<Snapshot>) -> Prev {
        let s = &snap;
        Prev {
            queue_at: s
                .queues
                .iter()
                .enumerate()
                .map(|(i, q)| ((q.vhost.clone(), q.name.clone()), i))
                .collect(),
            exchange_at: s
                .exchanges
                .iter()
                .enumerate()
                .map(|(i, x)| ((x.vhost.clone(), x.name.clone()), i))
                .collect(),
            conn_at: s
                .connections
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id, i))
                .collect(),
            channel_at: s
                .channels
                .iter()
                .enumerate()
                .map(|(i, c)| ((c.conn, c.number), i))
                .collect(),
            snap: Some(snap),
        }
    }

    /// The snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snap.as_deref()
    }

    /// The same queue in the previous snapshot.
    pub fn queue(&self, q: &QueueView) -> Option<&QueueView> {
        let i = *self.queue_at.get(&(q.vhost.clone(), q.name.clone()))?;
        self.snap.as_ref()?.queues.get(i)
    }

    /// The same exchange in the previous snapshot.
    pub fn exchange(&self, x: &ExchangeView) -> Option<&ExchangeView> {
        let i = *self.exchange_at.get(&(x.vhost.clone(), x.name.clone()))?;
        self.snap.as_ref()?.exchanges.get(i)
    }

    /// The connection `id` in the previous snapshot.
    pub fn conn(&self, id: ConnId) -> Option<&ConnView> {
        let i = *self.conn_at.get(&id)?;
        self.snap.as_ref()?.connections.get(i)
    }

    /// The channel in the previous snapshot.
    pub fn channel(&self, conn: ConnId, number: u16) -> Option<&ChannelView> {
        let i = *self.channel_at.get(&(conn, number))?;
        self.snap.as_ref()?.channels.get(i)
    }
}

/// What the server publishes and the API reads.
pub struct Stats {
    /// Swapped in whole; readers never wait.
    current: ArcSwap<Published>,
    /// Overview totals, newest last, at most `HISTORY_SAMPLES_MAX`; only
    /// the publisher (one ticker) and readers copying it take this lock,
    /// never the core lock.
    history: Mutex<VecDeque<Totals>>,
    /// Histories of the objects requests asked samples for (same lock
    /// discipline as `history`).
    objects: Mutex<ObjHistory>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            current: ArcSwap::from_pointee(Published::default()),
            history: Mutex::new(VecDeque::new()),
            objects: Mutex::new(ObjHistory::default()),
        }
    }
}

impl Stats {
    /// Publishes a new snapshot (called by the server's ticker, outside the
    /// core lock).
    pub fn publish(&self, snap: Snapshot) {
        let totals = Totals::of(&snap);
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .publish(&snap);
        let old = self.current.load_full();
        // A snapshot taken right after an API write comes soon after the
        // last one: keep the older base so rates span a useful interval.
        let base = match old.prev.snap.as_ref() {
            Some(p)
                if snap.taken_at_ms.saturating_sub(old.now.taken_at_ms) < RATE_INTERVAL_MS_MIN =>
            {
                p.clone()
            }
            _ => old.now.clone(),
        };
        self.current.store(Arc::new(Published {
            now: Arc::new(snap),
            prev: Prev::of(base),
        }));
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == HISTORY_SAMPLES_MAX {
            h.pop_front();
        }
        h.push_back(totals);
    }

    /// The current state.
    pub fn load(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// The history of one object (oldest first), watched from now on;
    /// `now` is its point in the current snapshot.
    pub fn object_history(&self, key: ObjKey, now: Point) -> Vec<Point> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .asked(key, now)
    }

    /// The history of totals, oldest first.
    pub fn history(&self) -> Vec<Totals> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.iter().copied().collect()
    }
}
