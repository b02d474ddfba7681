//! Per-batch state: work a run of publishes defers (dispatch), the cached
//! checks and routing of the run (`publish_cache.rs`), and scratch buffers
//! reused per publish so the hot path does not allocate. `entry.rs` decides
//! when a run ends.

use std::sync::Arc;

use amqp_codec::ShortStr;

use crate::publish_cache::PublishCache;

/// How many pending (vhost, queue) pairs are searched for a duplicate
/// before one is added; beyond it (fan-out to many queues) the list just
/// grows, which costs what dispatching inline did.
const PENDING_DEDUP_SCAN_MAX_ENTRIES: usize = 16;

/// State that lives for one run of publishes (or one batch).
#[derive(Default)]
pub(crate) struct Batch {
    /// Queues that received messages since the last dispatch run. A run of
    /// publishes enqueues first and delivers once per queue, instead of one
    /// dispatch pass per message; every other entry runs the dispatch first
    /// (`entry.rs`), so no client sees the difference.
    pub pending_dispatch: Vec<(Arc<str>, ShortStr)>,
    /// The last publish's checks and routing, valid within a run.
    pub publish_cache: PublishCache,
    /// Routing results of the current publish (reused, not reallocated).
    pub scratch_targets: Vec<ShortStr>,
    /// Indexes of the targets that accepted the current message (reused).
    pub scratch_accepted: Vec<usize>,
    /// Current nesting of dead-letter republishing (bounded by
    /// `DEAD_LETTER_DEPTH_MAX` in `enqueue.rs`).
    pub dead_letter_depth: u32,
    /// Enqueues in progress of copies of stored messages that are being
    /// released (dead-lettering, a due delayed message): their store
    /// records go through `Persistence::append_copy`.
    pub republishing: u32,
}

impl Batch {
    /// Schedules delivery from queue `q` of vhost `vname`, unless a short
    /// pending list already has it. `key` gives the vhost's shared name; it
    /// is looked up only when the pair is added (not per message of a run).
    pub fn defer(&mut self, vname: &str, q: &ShortStr, key: impl FnOnce() -> Option<Arc<str>>) {
        if self.pending_dispatch.len() <= PENDING_DEDUP_SCAN_MAX_ENTRIES
            && self
                .pending_dispatch
                .iter()
                .any(|(v, name)| name == q && amqp_codec::bytes_eq(v.as_bytes(), vname.as_bytes()))
        {
            return;
        }
        if let Some(key) = key() {
            self.pending_dispatch.push((key, q.clone()));
        }
    }
}
