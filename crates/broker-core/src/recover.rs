//! Rebuilding the broker from what the store recovered at startup.

use std::sync::Arc;

use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::broker::Broker;
use crate::exchange::{Destination, Exchange, ExchangeKind};
use crate::message::Message;
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
                .entry(e.vhost.clone())
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
                .entry(q.vhost.clone())
                .or_insert_with(Vhost::new);
            let name = ShortStr::from(q.name.as_str());
            v.queues.insert(
                name.clone(),
                Queue::new(name, true, None, q.auto_delete, table(&q.arguments)),
            );
            stats.queues += 1;
        }
        for b in r.bindings {
            let Some(v) = self.vhosts.get_mut(&b.vhost) else {
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
        let mut messages: FxHashMap<MessageId, Arc<Message>> = FxHashMap::default();
        for (id, m) in r.messages {
            let persistent = amqp_codec::peek_delivery_mode(&m.properties) == Some(2);
            messages.insert(
                id,
                Arc::new(Message {
                    exchange: ShortStr::from(m.exchange.as_str()),
                    routing_key: ShortStr::from(m.routing_key.as_str()),
                    properties: m.properties,
                    body: m.body,
                    persistent,
                }),
            );
        }
        for (vhost, qname, ids) in r.queue_messages {
            let Some(q) = self
                .vhosts
                .get_mut(&vhost)
                .and_then(|v| v.queues.get_mut(qname.as_str()))
            else {
                continue;
            };
            for id in ids {
                if let Some(m) = messages.get(&id) {
                    q.push(m.clone(), Some(id), u64::MAX);
                    if let Some(last) = q.messages.back_mut() {
                        last.redelivered = true;
                    }
                    stats.messages += 1;
                }
            }
        }
        stats
    }
}
