//! A queue: its ready messages in order, and the consumers it feeds.

use amqp_codec::{FieldTable, ShortStr};
use rustc_hash::FxHashMap;

use crate::arena::Arena;
use crate::message::{now_ms, QueuedMessage};
use crate::queue_args::{Overflow, QueueLimits};
use crate::queue_type::{DeliveryLimit, QueueType};
use crate::ready::{Placement, Ready};
use crate::ConnId;

/// A consumer as the queue sees it: who to deliver to. Credit (prefetch)
/// lives with the channel, which owns the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRef {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortStr,
    /// Copied from the consumer (fixed for its life) so the direct
    /// delivery path needs no lookup by tag.
    pub no_ack: bool,
    /// `x-priority` of basic.consume (default 0): higher goes first.
    pub priority: i64,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub durable: bool,
    /// Owning connection of an exclusive queue.
    pub exclusive_owner: Option<ConnId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Ready messages, stored by the queue's kind (FIFO or priority
    /// lanes); reached only through the methods below.
    ready: Ready,
    /// Ordered by priority, highest first, then by registration (see
    /// `consumers.rs`); on a single-active-consumer queue the active one
    /// is first, whatever its priority.
    pub consumers: Vec<ConsumerRef>,
    /// Consumer groups of equal priority below the first one, each with
    /// its round-robin cursor; empty when all consumers share a priority.
    pub lower_groups: Vec<crate::consumers::LowerGroup>,
    /// Set while one consumer holds exclusive access.
    pub exclusive_consumer: bool,
    /// Index in `consumers` to try first (round-robin within the first
    /// priority group).
    pub next_consumer: usize,
    /// Auto-delete applies only after the queue has had a consumer.
    pub had_consumer: bool,
    /// Parsed behaviour-changing arguments.
    pub limits: QueueLimits,
    /// Body bytes of ready messages; kept only for x-max-length-bytes.
    pub ready_bytes: u64,
    /// Last time the queue was used (declare, get, consume), for x-expires.
    pub last_used_ms: u64,
    /// Some message here may carry a TTL: head expiry must be checked.
    pub ttl_possible: bool,
    /// The queue is on its vhost's `timed_queues` list (visited by `tick`).
    pub timed: bool,
    /// The queue's type (`x-queue-type`), fixed at declare.
    pub kind: QueueType,
    /// Quorum queues: `x-delivery-limit`.
    pub delivery_limit: DeliveryLimit,
    /// Quorum queues: times each message that came back unacked has been
    /// returned, by arena location. Only returned messages have an entry
    /// (see `quorum.rs`); classic queues never fill it.
    pub delivery_counts: FxHashMap<u64, u32>,
    /// Quorum queues: returned messages at the head of `messages`, which
    /// are served before the others (RabbitMQ's `returns` queue). Always 0
    /// for classic queues.
    pub returns_ready: usize,
    /// Message deduplication (`x-message-deduplication`), if enabled.
    pub dedup: Option<Box<crate::dedup::Dedup>>,
    /// Message counts for the management API (`stats.rs`).
    pub stats: crate::stats::QueueStats,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<ConnId>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Queue {
        let mut limits = QueueLimits::from_args(&arguments);
        let kind = QueueType::of(&arguments);
        if kind.is_quorum() && limits.overflow == Overflow::RejectPublishDlx {
            // RabbitMQ 3.10's quorum queues accept it but use drop-head.
            limits.overflow = Overflow::DropHead;
        }
        let dedup = crate::dedup::Dedup::from_args(&arguments)
            .ok()
            .flatten()
            .map(Box::new);
        Queue {
            ready: Ready::new(limits.max_priority),
            kind,
            delivery_limit: if kind.is_quorum() {
                DeliveryLimit::parse(&arguments)
            } else {
                DeliveryLimit::Unset
            },
            delivery_counts: FxHashMap::default(),
            returns_ready: 0,
            ttl_possible: limits.message_ttl_ms.is_some(),
            timed: false,
            limits,
            ready_bytes: 0,
            last_used_ms: now_ms(),
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            consumers: Vec::new(),
            lower_groups: Vec::new(),
            exclusive_consumer: false,
            next_consumer: 0,
            had_consumer: false,
            dedup,
            stats: Default::default(),
        }
    }

    /// The periodic tick has work here: expiring messages or the queue.
    pub fn needs_tick(&self) -> bool {
        self.ttl_possible || self.limits.expires_ms.is_some()
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.ready.len()).unwrap_or(u32::MAX)
    }

    /// No ready messages.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// True for a priority queue (`x-max-priority` >= 1).
    pub fn is_priority(&self) -> bool {
        self.ready.is_priority()
    }

    /// Every ready message, in delivery order, left in place.
    pub fn ready_messages(&self) -> impl Iterator<Item = QueuedMessage> + '_ {
        self.ready.iter()
    }

    /// Number of ready messages.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Puts a message at `index` in delivery order (quorum returns; see
    /// `quorum.rs`). The caller accounts for `ready_bytes`.
    pub(crate) fn insert_ready_at(&mut self, index: usize, m: QueuedMessage) {
        self.ready.insert_at(index, m, Placement::default());
    }

    /// Where a message with these raw properties goes: its `priority`
    /// (absent = 0; capped at the maximum by the lanes). Reads the
    /// properties only for priority queues.
    #[inline]
    fn placement(&self, properties: &[u8]) -> Placement {
        if !self.ready.is_priority() {
            return Placement::default();
        }
        placement_from(properties)
    }

    /// The placement of a message already in the arena (requeue).
    fn placement_of(&self, arena: &dyn Arena, m: QueuedMessage) -> Placement {
        if !self.ready.is_priority() {
            return Placement::default();
        }
        stored_placement(arena, m)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    fn body_len(arena: &dyn Arena, m: QueuedMessage) -> u64 {
        arena.get(m.loc()).map_or(0, |v| v.body_len as u64)
    }

    fn counts_bytes(&self) -> bool {
        self.limits.max_length_bytes.is_some()
    }

    /// Appends a newly routed message; `properties` are its raw content
    /// properties (read for the priority only by priority queues).
    pub fn push(
        &mut self,
        m: QueuedMessage,
        body_len: u64,
        has_expiration: bool,
        properties: &[u8],
    ) {
        if self.counts_bytes() {
            self.ready_bytes += body_len;
        }
        self.ttl_possible |= has_expiration;
        let at = self.placement(properties);
        self.ready.push(m, at);
    }

    /// Installs recovered messages (in order) into an empty queue; a
    /// priority queue reads each one's priority from its stored properties.
    pub fn restore_messages(
        &mut self,
        messages: Vec<QueuedMessage>,
        body_bytes: u64,
        arena: &dyn Arena,
    ) {
        if self.counts_bytes() {
            self.ready_bytes += body_bytes;
        }
        // Expiry is re-checked from the head after a restart.
        self.ttl_possible = true;
        self.ready.restore(messages, |m| stored_placement(arena, m));
    }

    /// Takes the next message to deliver (the oldest; of the highest
    /// priority in a priority queue).
    #[inline]
    pub fn pop(&mut self, arena: &dyn Arena) -> Option<QueuedMessage> {
        let m = self.ready.pop()?;
        // Branch-free: 0 stays 0 for classic queues.
        self.returns_ready = self.returns_ready.saturating_sub(1);
        if self.counts_bytes() {
            self.ready_bytes = self.ready_bytes.saturating_sub(Self::body_len(arena, m));
        }
        Some(m)
    }

    /// Puts a message back where it was (in its priority lane), flagged
    /// redelivered.
    pub fn requeue(&mut self, mut m: QueuedMessage, arena: &dyn Arena) {
        m.set_redelivered();
        if self.counts_bytes() {
            self.ready_bytes += Self::body_len(arena, m);
        }
        let at = self.placement_of(arena, m);
        self.ready.requeue(m, at);
    }

    /// Removes and returns every ready message.
    pub fn purge(&mut self) -> Vec<QueuedMessage> {
        self.ready_bytes = 0;
        self.returns_ready = 0;
        let purged = self.ready.purge();
        for m in &purged {
            self.forget_delivery_count(*m);
        }
        purged
    }

    /// True when one more message of `size` bytes would exceed a length limit.
    pub fn is_full_for(&self, size: u64) -> bool {
        self.limits
            .max_length
            .is_some_and(|m| self.ready.len() as u64 >= m)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|m| self.ready_bytes + size > m)
    }

    /// True when the queue exceeds a length limit (after a push).
    pub fn is_over_limit(&self) -> bool {
        self.limits
            .max_length
            .is_some_and(|m| self.ready.len() as u64 > m)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|m| self.ready_bytes > m)
    }

    /// Pops the head message (the next to deliver: in a priority queue the
    /// head of the highest non-empty lane, as RabbitMQ checks it) if its TTL
    /// has passed. `strict` (used right
    /// before delivering) keeps a message that expires in this very
    /// millisecond, so TTL 0 messages still reach a consumer that is ready.
    pub fn pop_expired(
        &mut self,
        now: u64,
        strict: bool,
        arena: &dyn Arena,
    ) -> Option<QueuedMessage> {
        if self.head_expired(now, strict, arena) {
            self.pop(arena)
        } else {
            None
        }
    }

    /// True if the head's TTL has passed (see `pop_expired`).
    pub fn head_expired(&self, now: u64, strict: bool, arena: &dyn Arena) -> bool {
        if !self.ttl_possible {
            return false;
        }
        let Some(head) = self.ready.front() else {
            return false;
        };
        let Some(meta) = arena.get(head.loc()).map(|r| r.meta) else {
            return false;
        };
        let ttl = match self.limits.message_ttl_ms {
            Some(q) => q.min(meta.expiration_ms),
            None => meta.expiration_ms,
        };
        if ttl == u64::MAX {
            return false;
        }
        let expires = meta.published_ms.saturating_add(ttl);
        if strict {
            now > expires
        } else {
            now >= expires
        }
    }

    /// Expired messages wait at the head instead of being dead-lettered
    /// while `store_refuses` (the store is paused on a full disk): their
    /// dead-lettered copies would be refused (see `Broker::dead_letter`),
    /// so trying each of them at every tick and dispatch is skipped. Only
    /// queues with a TTL and a dead-letter exchange are concerned.
    pub fn holds_expired(&self, store_refuses: impl FnOnce() -> bool) -> bool {
        self.ttl_possible && self.limits.dead_letter_exchange.is_some() && store_refuses()
    }

    pub fn remove_consumer(&mut self, conn: ConnId, channel: u16, tag: &str) -> bool {
        let before = self.consumers.len();
        let top = self.consumers.first().map(|c| c.priority);
        self.consumers
            .retain(|c| !(c.conn == conn && c.channel == channel && c.tag.as_str() == tag));
        if self.consumers.len() != before {
            self.exclusive_consumer = false;
            self.last_used_ms = now_ms();
            // On a single-active-consumer queue the next active one (the
            // highest priority, earliest registered) is now first.
            self.consumers_changed(top);
            true
        } else {
            false
        }
    }
}

/// Where a message with these raw properties goes in a priority queue.
fn placement_from(properties: &[u8]) -> Placement {
    Placement {
        priority: amqp_codec::peek_priority(properties).unwrap_or(0),
    }
}

/// The placement of a message in the arena (read from its stored
/// properties; a missing record goes to lane 0).
fn stored_placement(arena: &dyn Arena, m: QueuedMessage) -> Placement {
    arena
        .get(m.loc())
        .map_or(Placement::default(), |v| match v.stored_at {
            Some(_) => Placement {
                priority: v.stub_priority,
            },
            None => placement_from(v.properties),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::{MemArena, NewMessage, RecordMeta};

    #[test]
    fn requeue_restores_original_position() {
        let mut arena = MemArena::new(1 << 16);
        let mut q = Queue::new("q".into(), false, None, false, FieldTable::default());
        for b in ["1", "2", "3", "4"] {
            let meta = RecordMeta {
                published_ms: 0,
                expiration_ms: u64::MAX,
                store_id: 0,
                persistent: false,
            };
            let loc = arena
                .append(
                    &NewMessage {
                        meta,
                        exchange: "",
                        routing_key: "q",
                        properties: b"",
                        body: b.as_bytes(),
                        stored_at: None,
                    },
                    1,
                )
                .unwrap();
            q.push(QueuedMessage::new(loc), 1, false, b"");
        }
        let one = q.pop(&arena).unwrap();
        let two = q.pop(&arena).unwrap();
        q.requeue(two, &arena);
        q.requeue(one, &arena);
        let all: Vec<QueuedMessage> = q.ready_messages().collect();
        let order: Vec<&[u8]> = all
            .iter()
            .map(|m| arena.get(m.loc()).unwrap().body)
            .collect();
        assert_eq!(order, vec![b"1".as_ref(), b"2", b"3", b"4"]);
        assert!(all[0].redelivered() && !all[2].redelivered());
    }

    /// A priority queue (x-max-priority 2) holding `bodies` published with
    /// the given priorities, pushed or restored.
    fn priority_queue(
        arena: &mut MemArena,
        msgs: &[(&'static str, Option<u8>)],
        restore: bool,
    ) -> Queue {
        let mut args = FieldTable::new();
        args.insert("x-max-priority".into(), amqp_codec::FieldValue::I32(2));
        let mut q = Queue::new("q".into(), true, None, false, args);
        let mut locs = Vec::new();
        for (body, p) in msgs {
            let props = amqp_codec::BasicProperties {
                priority: *p,
                ..Default::default()
            }
            .to_bytes();
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
                properties: &props,
                body: body.as_bytes(),
                stored_at: None,
            };
            let loc = arena.append(&new, 1).unwrap();
            if restore {
                locs.push(QueuedMessage::new(loc));
            } else {
                q.push(QueuedMessage::new(loc), 1, false, &props);
            }
        }
        if restore {
            q.restore_messages(locs, 0, arena);
        }
        q
    }

    fn drain(q: &mut Queue, arena: &MemArena) -> Vec<String> {
        std::iter::from_fn(|| q.pop(arena))
            .map(|m| String::from_utf8_lossy(arena.get(m.loc()).unwrap().body).into_owned())
            .collect()
    }

    #[test]
    fn priority_queue_orders_pushed_and_restored_messages() {
        let msgs = [("a", None), ("b", Some(2)), ("c", Some(1)), ("d", Some(7))];
        for restore in [false, true] {
            let mut arena = MemArena::new(1 << 16);
            let mut q = priority_queue(&mut arena, &msgs, restore);
            assert!(q.is_priority());
            assert_eq!(q.message_count(), 4);
            assert_eq!(
                drain(&mut q, &arena),
                vec!["b", "d", "c", "a"],
                "restore={restore}"
            );
            assert!(q.is_empty());
        }
    }

    #[test]
    fn priority_queue_requeue_and_limits() {
        let mut arena = MemArena::new(1 << 16);
        let msgs = [("a", Some(0)), ("b", Some(2)), ("c", Some(2))];
        let mut q = priority_queue(&mut arena, &msgs, false);
        let b = q.pop(&arena).unwrap();
        let c = q.pop(&arena).unwrap();
        q.requeue(c, &arena);
        q.requeue(b, &arena);
        assert_eq!(q.message_count(), 3);
        q.limits.max_length = Some(2);
        assert!(q.is_over_limit());
        // drop-head takes the next to deliver: "b".
        let dropped = q.pop(&arena).unwrap();
        assert_eq!(arena.get(dropped.loc()).unwrap().body, b"b");
        assert!(!q.is_over_limit() && q.is_full_for(0));
        assert_eq!(drain(&mut q, &arena), vec!["c", "a"]);
    }
}
