//! The topology part: vhosts with their exchanges, bindings and queues
//! (routing itself is `Vhost::route_delayed` in `route.rs`). Owns no
//! session or store state; handlers in `ops/` combine it with the others.

use std::sync::Arc;

use amqp_codec::Name;
use rustc_hash::FxHashMap;

use crate::delayed::DelayedStore;
use crate::error::{no_queue, AmqpError};
use crate::queue::Queue;
use crate::vhost::{Vhost, VhostKey};

/// Vhosts by name.
pub(crate) struct Topology {
    /// Every vhost; "/" exists from the start, others appear in recovery.
    pub vhosts: FxHashMap<VhostKey, Vhost>,
}

impl Topology {
    /// A topology with the default vhost "/" only.
    pub fn new() -> Topology {
        let mut vhosts = FxHashMap::default();
        vhosts.insert(VhostKey("/".into()), Vhost::new());
        Topology { vhosts }
    }

    /// The shared name of vhost `name` (so a caller can keep it without
    /// allocating), if it exists.
    pub fn vhost_key(&self, name: &str) -> Option<&Arc<str>> {
        self.vhosts
            .get_key_value(Name::new(name))
            .map(|(k, _)| &k.0)
    }

    /// The queue `name` in `vhost`, or 404 NOT_FOUND.
    pub fn queue(&self, vhost: &str, name: &str) -> Result<&Queue, AmqpError> {
        self.vhosts
            .get(vhost)
            .and_then(|v| v.queues.get(name))
            .ok_or_else(|| no_queue(name, vhost))
    }

    /// Mutable [`Topology::queue`].
    pub fn queue_mut(&mut self, vhost: &str, name: &str) -> Result<&mut Queue, AmqpError> {
        self.vhosts
            .get_mut(vhost)
            .and_then(|v| v.queues.get_mut(name))
            .ok_or_else(|| no_queue(name, vhost))
    }

    /// Pending delayed messages of an exchange (None: not a delayed one).
    pub fn delayed_pending(&self, vname: &str, exchange: &str) -> Option<usize> {
        self.vhosts
            .get(vname)
            .and_then(|v| v.delayed.get(exchange))
            .map(DelayedStore::len)
    }

    /// Wall-clock due time (ms since the epoch) of the earliest pending
    /// delayed message in any vhost.
    pub fn next_delayed_due_ms(&self) -> Option<u64> {
        self.vhosts
            .values()
            .flat_map(|v| v.delayed.values())
            .filter_map(DelayedStore::next_due_ms)
            .min()
    }
}
