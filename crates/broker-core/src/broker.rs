//! The broker: its parts, each owned by one module, and the few helpers
//! every handler uses. All state sits behind the one lock the server holds.
//!
//! Parts (each with its own methods; parts never call handlers):
//! - [`Topology`] (`topology.rs`): vhosts, exchanges, bindings, queues;
//! - [`Sessions`] (`session.rs`): connections, channels, consumers' credit,
//!   unacked deliveries, dirty connections, the alarm;
//! - [`Durability`] (`durability.rs`): the store hand-off, synced seq,
//!   channels waiting for the store;
//! - [`Batch`] (`batch.rs`): pending dispatch, the publish cache, scratch
//!   buffers.
//!
//! Handlers (`ops/`, `assembly.rs`, `enqueue.rs`, `delivery.rs`, ...) are
//! `impl Broker` blocks that combine parts; entry points are in `entry.rs`.

use amqp_codec::ShortStr;

use crate::access::Access;
pub(crate) use crate::batch::Batch;
use crate::config::CoreConfig;
pub(crate) use crate::durability::Durability;
use crate::persist::Persistence;
pub(crate) use crate::session::Sessions;
pub(crate) use crate::topology::Topology;

/// The whole broker state.
pub struct Broker {
    /// Limits and defaults.
    pub(crate) config: CoreConfig,
    /// Vhosts: exchanges, bindings, queues.
    pub(crate) topology: Topology,
    /// Connections and channels.
    pub(crate) sessions: Sessions,
    /// The store and who waits for it.
    pub(crate) durability: Durability,
    /// Per-batch state (deferred dispatch, publish cache, scratch).
    pub(crate) batch: Batch,
    /// Users, vhost metadata, permissions, limits.
    pub(crate) access: Access,
    /// Contents of every queued message; queues hold locations into it.
    pub(crate) arena: Box<dyn crate::arena::Arena>,
    /// State of the generator behind server-named queues and consumer tags.
    pub(crate) rng: u64,
    /// Policies and parameters stored by the management API (`params.rs`).
    pub(crate) params: crate::params::Params,
    /// Broker-wide counters that never decrease (`global_stats.rs`).
    pub(crate) global: crate::global_stats::GlobalStats,
}

impl Broker {
    pub fn new(
        config: CoreConfig,
        persist: Box<dyn Persistence>,
        arena: Box<dyn crate::arena::Arena>,
    ) -> Broker {
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5eed);
            h.finish() | 1
        };
        Broker {
            config,
            topology: Topology::new(),
            sessions: Sessions::new(),
            durability: Durability::new(persist),
            batch: Batch::default(),
            access: Access::default(),
            arena,
            rng: seed,
            params: Default::default(),
            global: Default::default(),
        }
    }

    /// Schedules delivery from queue `q` of vhost `vname` at the end of the
    /// run (see `Batch::pending_dispatch`).
    pub(crate) fn defer_dispatch(&mut self, vname: &str, q: &ShortStr) {
        let Broker {
            batch, topology, ..
        } = self;
        batch.defer(vname, q, || topology.vhost_key(vname).cloned());
    }

    /// Delivers from every queue that received messages since the last run.
    pub(crate) fn run_pending_dispatch(&mut self) {
        while !self.batch.pending_dispatch.is_empty() {
            let mut pending = std::mem::take(&mut self.batch.pending_dispatch);
            for (v, q) in &pending {
                // May dead-letter into other queues, which defers again.
                self.dispatch(v, q);
            }
            pending.clear();
            if self.batch.pending_dispatch.is_empty() {
                self.batch.pending_dispatch = pending;
            }
        }
    }

    /// Passes all produced output to the connections' sinks. The server
    /// calls this after every batch, before releasing the lock.
    pub(crate) fn flush_output(&mut self) {
        self.emit_ready_confirms();
        self.sessions.flush();
    }

    /// Next pseudo-random u64 (xorshift*), for generated names.
    pub(crate) fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

pub(crate) fn truncate(s: &str) -> &str {
    if s.len() <= 255 {
        return s;
    }
    let mut end = 255;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
