//! The durability part: the store hand-off (`Persistence`), how far the
//! store is known durable, and which channels wait for it (confirms,
//! tx.commit-ok). The walk over waiting channels that `on_synced` and
//! `on_store_failed` share is `ops/confirm_tx.rs::walk_waiting_sync`.

use rustc_hash::FxHashSet;

use crate::persist::{Persistence, Seq};
use crate::ConnId;

/// Store state as the core sees it.
pub(crate) struct Durability {
    /// Where durable definitions and messages go (buffered; the server's
    /// sync thread writes and fsyncs).
    pub persist: Box<dyn Persistence>,
    /// Highest store seq known durable.
    pub synced_seq: Seq,
    /// Channels with confirms or a commit waiting on the store.
    pub waiting_sync: FxHashSet<(ConnId, u16)>,
    /// Channels with confirms ready to emit at the next flush.
    pub confirm_dirty: Vec<(ConnId, u16)>,
}

impl Durability {
    /// Nothing synced yet, nobody waiting.
    pub fn new(persist: Box<dyn Persistence>) -> Durability {
        Durability {
            persist,
            synced_seq: 0,
            waiting_sync: FxHashSet::default(),
            confirm_dirty: Vec::new(),
        }
    }

    /// Store seq the core is waiting to see durable, if any.
    pub fn sync_wanted(&self) -> Option<Seq> {
        let last = self.persist.last_seq();
        (last > self.synced_seq).then_some(last)
    }

    /// Records that everything up to `seq` is durable; false if that was
    /// known already.
    pub fn advance(&mut self, seq: Seq) -> bool {
        if seq <= self.synced_seq {
            return false;
        }
        self.synced_seq = seq;
        true
    }

    /// Channel `ch` of `conn` waits for the store.
    pub fn wait(&mut self, conn: ConnId, ch: u16) {
        self.waiting_sync.insert((conn, ch));
    }

    /// Channel `ch` of `conn` no longer waits (closed, or released).
    pub fn stop_waiting(&mut self, conn: ConnId, ch: u16) {
        self.waiting_sync.remove(&(conn, ch));
    }

    /// Connection `conn` is gone: none of its channels waits.
    pub fn forget_connection(&mut self, conn: ConnId) {
        self.waiting_sync.retain(|(c, _)| *c != conn);
    }
}
