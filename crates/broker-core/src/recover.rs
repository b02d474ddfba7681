//! Rebuilding the broker from what the store recovers at startup. The store
//! streams into a [`Restorer`] (a `RestoreSink`): definitions first, then
//! every live message once, in id order.

use amqp_codec::ShortStr;

use crate::arena::{NewMessage, RecordMeta};
use crate::broker::Broker;
use crate::delayed::DelayedStore;
use crate::exchange::{Destination, Exchange};
use crate::message::{now_ms, QueuedMessage};
use crate::persist::{MessageId, MessageRecord, RecoveredDefs, RestoreSink, StoredAt};
use crate::queue::Queue;
use crate::tables::decode_table;
use crate::vhost::Vhost;

/// What a restore brought back.
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreStats {
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    pub messages: usize,
}

/// One recovered queue, by the slot number the store uses for it.
struct Slot {
    vhost: String,
    name: ShortStr,
    /// Its messages in order, moved into the queue by `finish` (collected
    /// here so each message costs no name lookup).
    messages: Vec<QueuedMessage>,
    ready_bytes: u64,
    /// A delayed exchange's hidden store queue: `name` is the exchange, and
    /// its messages go to the exchange's pending store.
    delayed: bool,
}

/// Receives the store's recovery stream and fills the broker. Every
/// recovered message is flagged redelivered: it may have been delivered
/// before the restart (AMQP allows the flag whenever that is possible).
pub struct Restorer<'b> {
    broker: &'b mut Broker,
    slots: Vec<Option<Slot>>,
    now_ms: u64,
    stats: RestoreStats,
}

impl<'b> Restorer<'b> {
    /// A restore into `broker` (see [`Broker::restorer`]).
    pub(crate) fn new(broker: &'b mut Broker) -> Restorer<'b> {
        Restorer {
            broker,
            slots: Vec::new(),
            now_ms: now_ms(),
            stats: RestoreStats::default(),
        }
    }
}

impl RestoreSink for Restorer<'_> {
    fn definitions(&mut self, defs: RecoveredDefs) {
        let b = &mut *self.broker;
        b.restore_access(&defs.access);
        for e in defs.exchanges {
            let args = decode_table(&e.arguments);
            let Ok((kind, delayed)) = crate::delayed::declared_kind(&e.kind, &args) else {
                continue;
            };
            let v = b
                .topology
                .vhosts
                .entry(e.vhost.as_str().into())
                .or_insert_with(Vhost::new);
            let name = ShortStr::from(e.name.as_str());
            let dedup = crate::dedup::Dedup::from_args(&args).ok().flatten();
            let mut ex = Exchange::new(name.clone(), kind, true, e.auto_delete, e.internal, args);
            ex.delayed = delayed;
            ex.dedup = dedup.map(Box::new);
            if delayed {
                v.delayed.insert(name.clone(), DelayedStore::default());
            }
            v.exchanges.insert(name, ex);
            self.stats.exchanges += 1;
        }
        for q in defs.queues {
            // A delayed exchange's hidden store queue: its messages go back
            // to the exchange (`timed_message`), not to a queue.
            if let Some(ex) = crate::delayed::exchange_of_hidden(&q.name) {
                let known = b
                    .topology
                    .vhosts
                    .get(q.vhost.as_str())
                    .is_some_and(|v| v.delayed.contains_key(ex));
                self.slots.push(known.then(|| Slot {
                    vhost: q.vhost.clone(),
                    name: ShortStr::from(ex),
                    messages: Vec::new(),
                    ready_bytes: 0,
                    delayed: true,
                }));
                continue;
            }
            // The store drops durable exclusive queues (their owner is gone,
            // RabbitMQ deletes them at startup); skip any that slip through.
            if q.exclusive {
                self.slots.push(None);
                continue;
            }
            let v = b
                .topology
                .vhosts
                .entry(q.vhost.as_str().into())
                .or_insert_with(Vhost::new);
            let name = ShortStr::from(q.name.as_str());
            let queue = Queue::new(
                name.clone(),
                true,
                None,
                q.auto_delete,
                decode_table(&q.arguments),
            );
            v.insert_queue(queue);
            self.slots.push(Some(Slot {
                vhost: q.vhost,
                name,
                messages: Vec::new(),
                ready_bytes: 0,
                delayed: false,
            }));
            self.stats.queues += 1;
        }
        for d in defs.bindings {
            let Some(v) = b.topology.vhosts.get_mut(d.vhost.as_str()) else {
                continue;
            };
            let dest_name = ShortStr::from(d.destination.as_str());
            let dest = if d.destination_is_queue {
                if !v.queues.contains_key(&dest_name) {
                    continue;
                }
                Destination::Queue(dest_name)
            } else {
                Destination::Exchange(dest_name)
            };
            let key = ShortStr::from(d.routing_key.as_str());
            match v.bind(d.source.as_str(), dest, key, decode_table(&d.arguments)) {
                Ok(true) => self.stats.bindings += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    vhost = %d.vhost, source = %d.source, destination = %d.destination,
                    "recovered binding dropped: {e}"
                ),
            }
        }
    }

    fn timed_message(&mut self, id: MessageId, queues: &[u32], m: &MessageRecord<'_>, due_ms: u64) {
        self.place_timed(id, queues, m, due_ms, None);
    }

    fn message(&mut self, id: MessageId, queues: &[u32], m: &MessageRecord<'_>) {
        self.place(id, queues, m, None);
    }

    /// The store's record stays the one copy: the arena gets a stub.
    fn stored_message(
        &mut self,
        id: MessageId,
        queues: &[u32],
        m: &MessageRecord<'_>,
        at: StoredAt,
        due_ms: Option<u64>,
    ) {
        match due_ms {
            Some(due) => self.place_timed(id, queues, m, due, Some(at)),
            None => self.place(id, queues, m, Some(at)),
        }
    }
}

impl Restorer<'_> {
    /// A recovered timed message: into its delayed exchange's pending
    /// store, or (held by ordinary queues) placed like any message.
    fn place_timed(
        &mut self,
        id: MessageId,
        queues: &[u32],
        m: &MessageRecord<'_>,
        due_ms: u64,
        stored_at: Option<StoredAt>,
    ) {
        let Some(Some(slot)) = queues.first().and_then(|q| self.slots.get(*q as usize)) else {
            return self.place(id, queues, m, stored_at);
        };
        if !slot.delayed {
            return self.place(id, queues, m, stored_at);
        }
        let (vhost, exchange) = (slot.vhost.clone(), slot.name.clone());
        let new = NewMessage {
            meta: RecordMeta {
                published_ms: 0,
                expiration_ms: u64::MAX,
                store_id: id,
                persistent: amqp_codec::peek_delivery_mode(m.properties) == Some(2),
            },
            exchange: m.exchange,
            routing_key: m.routing_key,
            properties: m.properties,
            body: m.body,
            stored_at,
        };
        let loc = match self.broker.arena.append(&new, 1) {
            Ok(loc) => loc,
            Err(e) => {
                tracing::error!("recovery: cannot place delayed message {id} in the arena: {e}");
                return;
            }
        };
        if let Some(store) = self
            .broker
            .topology
            .vhosts
            .get_mut(vhost.as_str())
            .and_then(|v| v.delayed.get_mut(&exchange))
        {
            store.push(due_ms, loc);
            self.stats.messages += 1;
        } else {
            self.broker.arena.release(loc);
        }
    }

    /// A recovered message into the queues holding it: one arena record
    /// (a stub when the store's record is the copy to read) referred to by
    /// each of them.
    fn place(
        &mut self,
        id: MessageId,
        queues: &[u32],
        m: &MessageRecord<'_>,
        stored_at: Option<StoredAt>,
    ) {
        let holders = queues
            .iter()
            .filter(|q| matches!(self.slots.get(**q as usize), Some(Some(s)) if !s.delayed))
            .count() as u32;
        if holders == 0 {
            return;
        }
        let persistent = amqp_codec::peek_delivery_mode(m.properties) == Some(2);
        // Per-message expiration restarts from recovery time.
        let expiration_ms = amqp_codec::peek_expiration(m.properties)
            .and_then(|e| crate::queue_args::parse_expiration(e).ok())
            .unwrap_or(u64::MAX);
        let new = NewMessage {
            meta: RecordMeta {
                published_ms: self.now_ms,
                expiration_ms,
                store_id: id,
                persistent,
            },
            exchange: m.exchange,
            routing_key: m.routing_key,
            properties: m.properties,
            body: m.body,
            stored_at,
        };
        let loc = match self.broker.arena.append(&new, holders) {
            Ok(loc) => loc,
            Err(e) => {
                tracing::error!("recovery: cannot place message {id} in the arena: {e}");
                return;
            }
        };
        for q in queues {
            if let Some(Some(slot)) = self
                .slots
                .get_mut(*q as usize)
                .filter(|s| !matches!(s, Some(s) if s.delayed))
            {
                let mut qm = QueuedMessage::new(loc);
                qm.set_redelivered();
                slot.messages.push(qm);
                slot.ready_bytes += m.body.len() as u64;
            }
        }
    }

    /// Moves the collected messages into their queues.
    pub fn finish(self) -> RestoreStats {
        let mut stats = self.stats;
        for slot in self.slots.into_iter().flatten().filter(|s| !s.delayed) {
            let Some(v) = self.broker.topology.vhosts.get_mut(slot.vhost.as_str()) else {
                continue;
            };
            let Some(q) = v.queues.get_mut(&slot.name) else {
                continue;
            };
            stats.messages += slot.messages.len();
            q.restore_messages(slot.messages, slot.ready_bytes, self.broker.arena.as_ref());
            // Recovered messages are checked for expiry from the head.
            v.watch(&slot.name);
        }
        stats
    }
}
