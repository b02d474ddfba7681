//! Rebuilding the broker from what the store recovered at startup.

use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;

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
        // Messages and each queue's ids are both in id order (the store
        // returns them so; sorted here if not), so reference counts and
        // locations are matched by merging sorted lists: no hash maps, O(n).
        let mut messages = r.messages;
        if !messages.is_sorted_by_key(|(id, _)| *id) {
            messages.sort_unstable_by_key(|(id, _)| *id);
        }
        let ids: Vec<MessageId> = messages.iter().map(|(id, _)| *id).collect();
        let mut lists: Vec<(String, String, Vec<MessageId>)> = r
            .queue_messages
            .into_iter()
            .filter(|(vhost, qname, _)| {
                self.vhosts
                    .get(vhost.as_str())
                    .is_some_and(|v| v.queues.contains_key(qname.as_str()))
            })
            .collect();
        for (_, _, list) in lists.iter_mut() {
            if !list.is_sorted() {
                list.sort_unstable();
            }
        }
        let mut refs: Vec<u32> = vec![0; ids.len()];
        for (_, _, list) in &lists {
            merge(&ids, list, |i| refs[i] += 1);
        }
        let now = now_ms();
        let mut locs: Vec<Option<Loc>> = vec![None; ids.len()];
        for (i, (id, m)) in messages.into_iter().enumerate() {
            if refs[i] == 0 {
                continue;
            }
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
            match self.arena.append(&new, refs[i]) {
                Ok(loc) => locs[i] = Some(loc),
                Err(e) => tracing::error!("recovery: cannot place message {id} in the arena: {e}"),
            }
        }
        for (vhost, qname, list) in lists {
            let Some(q) = self
                .vhosts
                .get_mut(vhost.as_str())
                .and_then(|v| v.queues.get_mut(qname.as_str()))
            else {
                continue;
            };
            q.messages.reserve(list.len());
            merge(&ids, &list, |i| {
                if let Some(loc) = locs[i] {
                    let mut qm = QueuedMessage::new(loc);
                    // It may have been delivered before the restart.
                    qm.set_redelivered();
                    q.push(qm, 0, false);
                    stats.messages += 1;
                }
            });
            q.ttl_possible = true;
        }
        stats
    }
}

/// Calls `found(i)` for every element of `list` (sorted) equal to `ids[i]`
/// (`ids` sorted, unique): a linear merge of two sorted lists.
fn merge(ids: &[MessageId], list: &[MessageId], mut found: impl FnMut(usize)) {
    let mut i = 0;
    for id in list {
        while i < ids.len() && ids[i] < *id {
            i += 1;
        }
        if i < ids.len() && ids[i] == *id {
            found(i);
        }
    }
}
