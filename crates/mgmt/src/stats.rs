//! The published snapshot and what rates need: the previous snapshot's
//! counters, and a short history of the overview's totals for `samples`.

use std::collections::VecDeque;
use std::sync::Arc;

use arc_swap::ArcSwap;
use broker_core::inspect::Snapshot;
use std::sync::Mutex;

/// Overview samples kept for `*_details.samples` (at the default 5 s
/// period: 10 minutes).
pub const HISTORY_SAMPLES_MAX: usize = 120;

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
    /// The one before (rates are differences), if any.
    pub before: Option<Arc<Snapshot>>,
}

/// What the server publishes and the API reads.
pub struct Stats {
    /// Swapped in whole; readers never wait.
    current: ArcSwap<Published>,
    /// Overview totals, newest last, at most `HISTORY_SAMPLES_MAX`; only
    /// the publisher (one ticker) and readers copying it take this lock,
    /// never the core lock.
    history: Mutex<VecDeque<Totals>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            current: ArcSwap::from_pointee(Published::default()),
            history: Mutex::new(VecDeque::new()),
        }
    }
}

impl Stats {
    /// Publishes a new snapshot (called by the server's ticker, outside the
    /// core lock).
    pub fn publish(&self, snap: Snapshot) {
        let totals = Totals::of(&snap);
        let old = self.current.load_full();
        let before = Some(old.now.clone());
        self.current.store(Arc::new(Published {
            now: Arc::new(snap),
            before,
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

    /// The history of totals, oldest first.
    pub fn history(&self) -> Vec<Totals> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.iter().copied().collect()
    }
}
