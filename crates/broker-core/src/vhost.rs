//! A virtual host: a namespace of exchanges and queues.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use amqp_codec::{FieldTable, Name, ShortStr};
use rustc_hash::FxHashMap;

use crate::delayed::DelayedStore;
use crate::exchange::{Destination, Exchange, ExchangeKind};
use crate::queue::Queue;

/// Exchanges every vhost has, as in RabbitMQ.
const PREDECLARED: [(&str, ExchangeKind); 6] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
    ("amq.rabbitmq.trace", ExchangeKind::Topic),
];

/// A vhost's name as the broker's vhost table keys it: shared (connections
/// name their vhost without allocating) and looked up as a [`Name`], so
/// the hot path compares names inline.
#[derive(Debug, Clone)]
pub struct VhostKey(pub Arc<str>);

impl Hash for VhostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for VhostKey {
    fn eq(&self, other: &Self) -> bool {
        amqp_codec::bytes_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for VhostKey {}

impl Borrow<str> for VhostKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Borrow<Name> for VhostKey {
    fn borrow(&self) -> &Name {
        Name::new(&self.0)
    }
}

impl From<&str> for VhostKey {
    fn from(s: &str) -> Self {
        VhostKey(s.into())
    }
}

impl std::ops::Deref for VhostKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
pub struct Vhost {
    pub exchanges: FxHashMap<ShortStr, Exchange>,
    pub queues: FxHashMap<ShortStr, Queue>,
    /// Reverse binding index: for each destination, the exchanges that bind
    /// to it and how many bindings each has, so deleting a queue or an
    /// exchange visits only those exchanges (not every exchange).
    sources: FxHashMap<Destination, FxHashMap<ShortStr, u32>>,
    /// Queues the periodic tick visits (`Queue::needs_tick`): those with
    /// TTLs or x-expires, so a tick costs O(timed queues), not O(queues).
    pub timed_queues: Vec<ShortStr>,
    /// Pending messages of each `x-delayed-message` exchange, by exchange name.
    pub delayed: FxHashMap<ShortStr, DelayedStore>,
}

impl Vhost {
    pub fn new() -> Vhost {
        let mut exchanges = FxHashMap::default();
        exchanges.insert(
            ShortStr::from(""),
            Exchange::new(
                ShortStr::from(""),
                ExchangeKind::Direct,
                true,
                false,
                false,
                FieldTable::default(),
            ),
        );
        for (n, kind) in PREDECLARED {
            let internal = n == "amq.rabbitmq.trace";
            exchanges.insert(
                ShortStr::from(n),
                Exchange::new(
                    ShortStr::from(n),
                    kind,
                    true,
                    false,
                    internal,
                    FieldTable::default(),
                ),
            );
        }
        Vhost {
            exchanges,
            queues: FxHashMap::default(),
            sources: FxHashMap::default(),
            timed_queues: Vec::new(),
            delayed: FxHashMap::default(),
        }
    }

    /// Adds a queue (replacing one of the same name).
    pub fn insert_queue(&mut self, queue: Queue) {
        let name = queue.name.clone();
        self.queues.insert(name.clone(), queue);
        self.watch(&name);
    }

    /// Puts `name` on the tick's list if it needs ticks and is not there.
    pub fn watch(&mut self, name: &ShortStr) {
        if let Some(q) = self.queues.get_mut(name) {
            if !q.timed && q.needs_tick() {
                q.timed = true;
                self.timed_queues.push(name.clone());
            }
        }
    }

    /// Binds `destination` to exchange `source`; Ok(false) if the binding
    /// existed (or the exchange does not). Every binding goes through here
    /// and `unbind`, so the reverse index stays exact.
    pub fn bind(
        &mut self,
        source: &str,
        destination: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<bool, String> {
        let Some(ex) = self.exchanges.get_mut(source) else {
            return Ok(false);
        };
        let name = ex.name.clone();
        let dest = destination.clone();
        let added = ex.bind(destination, routing_key, arguments)?;
        if added {
            *self
                .sources
                .entry(dest)
                .or_default()
                .entry(name)
                .or_default() += 1;
        }
        Ok(added)
    }

    /// Removes one binding; false if there was none.
    pub fn unbind(
        &mut self,
        source: &str,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let Some(ex) = self.exchanges.get_mut(source) else {
            return false;
        };
        let removed = ex.unbind(destination, routing_key, arguments);
        if removed {
            self.forget_source(destination, source, 1);
        }
        removed
    }

    /// Removes every binding to `destination` (a queue or exchange being
    /// deleted), visiting only the exchanges that bind to it; returns them.
    pub fn unbind_destination(&mut self, destination: &Destination) -> Vec<ShortStr> {
        let Some(sources) = self.sources.remove(destination) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(sources.len());
        for (source, _) in sources {
            if let Some(ex) = self.exchanges.get_mut(&source) {
                ex.unbind_all_to(destination);
            }
            out.push(source);
        }
        out
    }

    /// Removes an exchange and forgets its bindings from the reverse index
    /// (bindings *to* it are removed with `unbind_destination`).
    pub fn remove_exchange(&mut self, name: &str) -> Option<Exchange> {
        let ex = self.exchanges.remove(name)?;
        let mut counts: FxHashMap<&Destination, u32> = FxHashMap::default();
        for b in ex.bindings.iter() {
            *counts.entry(&b.destination).or_default() += 1;
        }
        for (dest, n) in counts {
            self.forget_source(dest, name, n);
        }
        Some(ex)
    }

    fn forget_source(&mut self, destination: &Destination, source: &str, n: u32) {
        let Some(m) = self.sources.get_mut(destination) else {
            return;
        };
        if let Some(count) = m.get_mut(source) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                m.remove(source);
            }
        }
        if m.is_empty() {
            self.sources.remove(destination);
        }
    }
}
