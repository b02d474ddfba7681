//! Quorum-queue delivery semantics (RabbitMQ 3.10's `rabbit_fifo`):
//! every return of a delivered message counts (nack/reject with requeue,
//! basic.recover, channel close, connection loss); a returned message
//! carries `x-delivery-count` (a long) on later deliveries, and on every
//! basic.get-ok; past `x-delivery-limit` it is dead-lettered with reason
//! `delivery_limit` (or dropped without a dead-letter exchange).
//!
//! Where a returned message goes, as in 3.10: a nack/reject/recover on a
//! queue without a delivery limit requeues it at the tail; otherwise (a
//! limit is set, or its channel went away) it joins the returned messages
//! served before the rest of the queue.
//!
//! The counts live in the queue (`Queue::delivery_counts`), one entry per
//! returned message; classic queues never touch any of this. Counts are
//! not persisted: after a restart they start again from 0.

use amqp_codec::{BasicProperties, FieldValue, ShortStr};
use bytes::{Bytes, BytesMut};

use crate::arena::{Arena, MessageView};
use crate::broker::Broker;
use crate::delivery::{write_content, write_view, ContentMethod};
use crate::enqueue::Incoming;
use crate::message::QueuedMessage;
use crate::queue::Queue;

/// Why a delivered message comes back to its quorum queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnCause {
    /// basic.nack / basic.reject with requeue, basic.recover.
    Settled,
    /// Its channel closed or its connection went away.
    ConsumerGone,
}

impl Queue {
    /// Deliveries of `m` that came back so far (0 if it never did).
    pub(crate) fn delivery_count(&self, m: QueuedMessage) -> u32 {
        if !m.redelivered() || self.delivery_counts.is_empty() {
            return 0;
        }
        self.delivery_counts.get(&m.loc()).copied().unwrap_or(0)
    }

    /// Drops the count of a message leaving the queue for good. Costs one
    /// bit test for messages never returned (all of a classic queue's).
    pub(crate) fn forget_delivery_count(&mut self, m: QueuedMessage) {
        if m.redelivered() && !self.delivery_counts.is_empty() {
            self.delivery_counts.remove(&m.loc());
        }
    }

    /// Counts one more return of `m`; returns the new count.
    fn count_return(&mut self, m: QueuedMessage) -> u32 {
        let n = self.delivery_counts.entry(m.loc()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Puts a returned message back: after the other returned messages at
    /// the head (`front`), or at the tail.
    fn requeue_returned(&mut self, mut m: QueuedMessage, front: bool, arena: &dyn Arena) {
        m.set_redelivered();
        if self.limits.max_length_bytes.is_some() {
            self.ready_bytes += arena.get(m.loc()).map_or(0, |v| v.body_len as u64);
        }
        if front {
            let at = self.returns_ready.min(self.ready_len());
            self.insert_ready_at(at, m);
            self.returns_ready = at + 1;
        } else {
            let end = self.ready_len();
            self.insert_ready_at(end, m);
        }
    }
}

impl Broker {
    /// A delivered message of the quorum queue `qname` comes back unacked:
    /// counts the delivery, then dead-letters it past the delivery limit
    /// or requeues it where RabbitMQ 3.10 would. False if the queue is gone
    /// (the caller then releases the message).
    pub(crate) fn return_to_quorum(
        &mut self,
        vname: &str,
        qname: &ShortStr,
        msg: QueuedMessage,
        cause: ReturnCause,
    ) -> bool {
        let Some(q) = self
            .topology
            .vhosts
            .get_mut(vname)
            .and_then(|v| v.queues.get_mut(qname))
        else {
            return false;
        };
        let count = q.count_return(msg);
        if q.delivery_limit.exceeded(count) {
            let mut m = msg;
            // Marked so dead-lettering forgets its count.
            m.set_redelivered();
            self.dead_letter(vname, qname, m, "delivery_limit");
            return true;
        }
        let front = cause == ReturnCause::ConsumerGone || q.delivery_limit.is_set();
        q.requeue_returned(msg, front, self.arena.as_ref());
        true
    }
}

/// Writes a message delivered from a quorum queue with `x-delivery-count`
/// set to `count` in its headers (the stored properties are unchanged).
/// Properties that cannot be decoded are sent as stored.
pub(crate) fn write_view_counted(
    out: &mut BytesMut,
    ch: u16,
    method: ContentMethod<'_>,
    v: &MessageView<'_>,
    frame_max: u32,
    count: u32,
) {
    let raw = Bytes::copy_from_slice(v.properties);
    let Ok(mut props) = BasicProperties::decode(&raw) else {
        write_view(out, ch, method, v, frame_max);
        return;
    };
    let mut headers = props.headers.take().unwrap_or_default();
    headers.insert("x-delivery-count".into(), FieldValue::I64(i64::from(count)));
    props.headers = Some(headers);
    let properties = props.to_bytes();
    let m = Incoming {
        exchange: v.exchange,
        routing_key: v.routing_key,
        properties: &properties,
        body: v.body,
    };
    write_content(out, ch, method, &m, frame_max);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::{MemArena, NewMessage, RecordMeta};
    use amqp_codec::FieldTable;

    fn quorum(limit: Option<i32>) -> Queue {
        let mut args = FieldTable::new();
        args.insert("x-queue-type".into(), FieldValue::LongStr("quorum".into()));
        if let Some(l) = limit {
            args.insert("x-delivery-limit".into(), FieldValue::I32(l));
        }
        Queue::new("q".into(), true, None, false, args)
    }

    fn fill(arena: &mut MemArena, q: &mut Queue, bodies: &[&str]) {
        for b in bodies {
            let meta = RecordMeta {
                published_ms: 0,
                expiration_ms: u64::MAX,
                store_id: 0,
                persistent: false,
            };
            let new = NewMessage {
                meta,
                exchange: "",
                routing_key: "q",
                properties: b"",
                body: b.as_bytes(),
                stored_at: None,
            };
            let loc = arena.append(&new, 1).unwrap();
            q.push(QueuedMessage::new(loc), 1, false, b"");
        }
    }

    fn order(arena: &MemArena, q: &Queue) -> Vec<String> {
        q.ready_messages()
            .map(|m| String::from_utf8_lossy(arena.get(m.loc()).unwrap().body).into_owned())
            .collect()
    }

    #[test]
    fn returns_go_first_in_return_order() {
        let mut arena = MemArena::new(1 << 16);
        let mut q = quorum(Some(5));
        fill(&mut arena, &mut q, &["1", "2", "3"]);
        let one = q.pop(&arena).unwrap();
        let two = q.pop(&arena).unwrap();
        q.requeue_returned(two, true, &arena);
        q.requeue_returned(one, true, &arena);
        assert_eq!(order(&arena, &q), ["2", "1", "3"]);
        assert_eq!(q.returns_ready, 2);
        let two = q.pop(&arena).unwrap();
        assert_eq!(q.returns_ready, 1);
        q.requeue_returned(two, false, &arena);
        assert_eq!(order(&arena, &q), ["1", "3", "2"]);
        assert_eq!(q.returns_ready, 1);
        q.purge();
        assert_eq!(q.returns_ready, 0);
    }

    #[test]
    fn counts_only_returned_messages_and_forgets_them() {
        let mut arena = MemArena::new(1 << 16);
        let mut q = quorum(Some(1));
        fill(&mut arena, &mut q, &["1", "2"]);
        let one = q.pop(&arena).unwrap();
        assert_eq!(q.delivery_count(one), 0);
        assert_eq!(q.count_return(one), 1);
        assert!(!q.delivery_limit.exceeded(1));
        let mut back = one;
        back.set_redelivered();
        assert_eq!(q.delivery_count(back), 1);
        assert_eq!(q.count_return(back), 2);
        assert!(q.delivery_limit.exceeded(2));
        q.forget_delivery_count(back);
        assert!(q.delivery_counts.is_empty());
    }

    #[test]
    fn delivery_count_header_is_a_long() {
        let mut out = BytesMut::new();
        let view = MessageView {
            meta: RecordMeta {
                published_ms: 0,
                expiration_ms: u64::MAX,
                store_id: 0,
                persistent: false,
            },
            exchange: "",
            routing_key: "q",
            properties: &[0, 0],
            body: b"x",
            body_len: 1,
            stored_at: None,
            stub_priority: 0,
        };
        let method = ContentMethod::GetOk {
            delivery_tag: 1,
            redelivered: false,
            message_count: 0,
        };
        write_view_counted(&mut out, 1, method, &view, 4096, 3);
        // 'l' then the 8-byte count, right after the header's name.
        let name = b"x-delivery-count";
        let at = out
            .windows(name.len())
            .position(|w| w == name)
            .expect("header present");
        let value = &out[at + name.len()..at + name.len() + 9];
        assert_eq!(value, &[b'l', 0, 0, 0, 0, 0, 0, 0, 3]);
    }
}
