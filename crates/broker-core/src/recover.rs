//! Rebuilding the broker from what the store recovered at startup.

use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::arena::{Loc, NewMessage, RecordMeta};
use crate::broker::Broker;
use crate::exchange::{Destination, Exchange, ExchangeKind};
use crate::message::{now_ms, QueuedMessage};
use crate::persist::{MessageId, Recovered};
use crate::queue::Queue;
use crate::vhost::Vhost;

/// What `restore` brought back.
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreStats {
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    pub messages: usize,
}

fn table(raw: &[u8]) -> FieldTable {
    let mut b = Bytes::copy_from_slice(raw);
    FieldTable::decode(&mut b).unwrap_or_default()
}

impl Broker {
    /// Loads durable exchanges, queues, bindings and messages. Every
    /// recovered message is flagged redelivered: it may have been delivered
    /// before the restart (AMQP allows the flag whenever that is possible).
    pub fn restore(&mut self, r: Recovered) -> RestoreStats {
        let mut stats = RestoreStats::default();
        for e in r.exchanges {
            let Some(kind) = ExchangeKind::parse(&e.kind) else {
                continue;
            };
            let v = self
                .vhosts
                .entry(e.vhost.as_str().into())
                .or_insert_with(Vhost::new);
            let name = ShortStr::from(e.name.as_str());
            v.exchanges.insert(
                name.clone(),
                Exchange::new(
                    name,
                    kind,
                    true,
                    e.auto_delete,
                    e.internal,
                    table(&e.arguments),
                ),
            );
            stats.exchanges += 1;
        }
        for q in r.queues {
            if q.exclusive {
                // Its owner is gone: RabbitMQ deletes it at startup.
                let _ = self.persist.delete_queue(&q.vhost, &q.name);
                continue;
            }
            let v = self
                .vhosts
                .entry(q.vhost.as_str().into())
                .or_insert_with(Vhost::new);
            let name = ShortStr::from(q.name.as_str());
            v.queues.insert(
                name.clone(),
                Queue::new(name, true, None, q.auto_delete, table(&q.arguments)),
            );
            stats.queues += 1;
        }
        for b in r.bindings {
            let Some(v) = self.vhosts.get_mut(b.vhost.as_str()) else {
                continue;
            };
            let dest_name = ShortStr::from(b.destination.as_str());
            let dest = if b.destination_is_queue {
                if !v.queues.contains_key(&dest_name) {
                    continue;
                }
                Destination::Queue(dest_name)
            } else {
                Destination::Exchange(dest_name)
            };
            if let Some(ex) = v.exchanges.get_mut(b.source.as_str()) {
                if ex
                    .bind(
                        dest,
                        ShortStr::from(b.routing_key.as_str()),
                        table(&b.arguments),
                    )
                    .is_ok()
                {
                    stats.bindings += 1;
                }
            }
        }
        // How many recovered queues hold each message, so the arena record
        // gets the right reference count.
        let mut holders: FxHashMap<MessageId, u32> = FxHashMap::default();
        for (vhost, qname, ids) in &r.queue_messages {
            if self
                .vhosts
                .get(vhost.as_str())
                .is_some_and(|v| v.queues.contains_key(qname.as_str()))
            {
                for id in ids {
                    *holders.entry(*id).or_default() += 1;
                }
            }
        }
        let now = now_ms();
        let mut locs: FxHashMap<MessageId, Loc> = FxHashMap::default();
        let mut messages = r.messages;
        messages.sort_unstable_by_key(|(id, _)| *id);
        for (id, m) in messages {
            let Some(&refs) = holders.get(&id) else {
                continue;
            };
            let persistent = amqp_codec::peek_delivery_mode(&m.properties) == Some(2);
            // Per-message expiration restarts from recovery time.
            let expiration_ms = amqp_codec::peek_expiration(&m.properties)
                .and_then(|e| crate::queue_args::parse_expiration(e).ok())
                .unwrap_or(u64::MAX);
            let meta = RecordMeta {
                published_ms: now,
                expiration_ms,
                store_id: id,
                persistent,
            };
            let new = NewMessage {
                meta,
                exchange: &m.exchange,
                routing_key: &m.routing_key,
                properties: &m.properties,
                body: &m.body,
            };
            match self.arena.append(&new, refs) {
                Ok(loc) => {
                    locs.insert(id, loc);
                }
                Err(e) => tracing::error!("recovery: cannot place message {id} in the arena: {e}"),
            }
        }
        for (vhost, qname, ids) in r.queue_messages {
            let Some(q) = self
                .vhosts
                .get_mut(vhost.as_str())
                .and_then(|v| v.queues.get_mut(qname.as_str()))
            else {
                continue;
            };
            for id in ids {
                if let Some(&loc) = locs.get(&id) {
                    let mut qm = QueuedMessage::new(loc);
                    // It may have been delivered before the restart.
                    qm.set_redelivered();
                    q.push(qm, 0, false);
                    stats.messages += 1;
                }
            }
            q.ttl_possible = true;
        }
        stats
    }
}
