//! A queue: its ready messages in order, and the consumers it feeds.

use std::collections::VecDeque;

use amqp_codec::{FieldTable, ShortStr};

use crate::arena::Arena;
use crate::message::{now_ms, QueuedMessage};
use crate::queue_args::QueueLimits;
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
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub durable: bool,
    /// Owning connection of an exclusive queue.
    pub exclusive_owner: Option<ConnId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Ready messages, ordered by position.
    pub messages: VecDeque<QueuedMessage>,
    pub consumers: Vec<ConsumerRef>,
    /// Set while one consumer holds exclusive access.
    pub exclusive_consumer: bool,
    /// Index in `consumers` to try first (round-robin).
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
    /// Message deduplication (`x-message-deduplication`), if enabled.
    pub dedup: Option<Box<crate::dedup::Dedup>>,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<ConnId>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Queue {
        let limits = QueueLimits::parse(&arguments).unwrap_or_default();
        let dedup = crate::dedup::Dedup::from_args(&arguments)
            .ok()
            .flatten()
            .map(Box::new);
        Queue {
            ttl_possible: limits.message_ttl_ms.is_some(),
            limits,
            ready_bytes: 0,
            last_used_ms: now_ms(),
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            messages: VecDeque::new(),
            consumers: Vec::new(),
            exclusive_consumer: false,
            next_consumer: 0,
            had_consumer: false,
            dedup,
        }
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.messages.len()).unwrap_or(u32::MAX)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    fn body_len(arena: &dyn Arena, m: QueuedMessage) -> u64 {
        arena.get(m.loc()).map_or(0, |v| v.body.len() as u64)
    }

    fn counts_bytes(&self) -> bool {
        self.limits.max_length_bytes.is_some()
    }

    /// Appends a newly routed message.
    pub fn push(&mut self, m: QueuedMessage, body_len: u64, has_expiration: bool) {
        if self.counts_bytes() {
            self.ready_bytes += body_len;
        }
        self.ttl_possible |= has_expiration;
        self.messages.push_back(m);
    }

    /// Installs recovered messages (in order) into an empty queue.
    pub fn restore_messages(&mut self, messages: Vec<QueuedMessage>, body_bytes: u64) {
        if self.counts_bytes() {
            self.ready_bytes += body_bytes;
        }
        // Expiry is re-checked from the head after a restart.
        self.ttl_possible = true;
        if self.messages.is_empty() {
            // Reuses the vector's buffer: no copy of millions of entries.
            self.messages = VecDeque::from(messages);
        } else {
            self.messages.extend(messages);
        }
    }

    /// Takes the oldest ready message.
    pub fn pop(&mut self, arena: &dyn Arena) -> Option<QueuedMessage> {
        let m = self.messages.pop_front()?;
        if self.counts_bytes() {
            self.ready_bytes = self.ready_bytes.saturating_sub(Self::body_len(arena, m));
        }
        Some(m)
    }

    /// Puts a message back where it was, flagged redelivered.
    pub fn requeue(&mut self, mut m: QueuedMessage, arena: &dyn Arena) {
        m.set_redelivered();
        if self.counts_bytes() {
            self.ready_bytes += Self::body_len(arena, m);
        }
        // Requeues usually land at or near the front: search from there.
        let at = self
            .messages
            .partition_point(|q| q.position() < m.position());
        self.messages.insert(at, m);
    }

    /// Removes and returns every ready message.
    pub fn purge(&mut self) -> Vec<QueuedMessage> {
        self.ready_bytes = 0;
        self.messages.drain(..).collect()
    }

    /// True when one more message of `size` bytes would exceed a length limit.
    pub fn is_full_for(&self, size: u64) -> bool {
        self.limits
            .max_length
            .is_some_and(|m| self.messages.len() as u64 >= m)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|m| self.ready_bytes + size > m)
    }

    /// True when the queue exceeds a length limit (after a push).
    pub fn is_over_limit(&self) -> bool {
        self.limits
            .max_length
            .is_some_and(|m| self.messages.len() as u64 > m)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|m| self.ready_bytes > m)
    }

    /// Pops the head message if its TTL has passed. `strict` (used right
    /// before delivering) keeps a message that expires in this very
    /// millisecond, so TTL 0 messages still reach a consumer that is ready.
    pub fn pop_expired(
        &mut self,
        now: u64,
        strict: bool,
        arena: &dyn Arena,
    ) -> Option<QueuedMessage> {
        if !self.ttl_possible {
            return None;
        }
        let head = *self.messages.front()?;
        let meta = arena.get(head.loc())?.meta;
        let ttl = match self.limits.message_ttl_ms {
            Some(q) => q.min(meta.expiration_ms),
            None => meta.expiration_ms,
        };
        if ttl == u64::MAX {
            return None;
        }
        let expires = meta.published_ms.saturating_add(ttl);
        let expired = if strict {
            now > expires
        } else {
            now >= expires
        };
        if expired {
            self.pop(arena)
        } else {
            None
        }
    }

    pub fn remove_consumer(&mut self, conn: ConnId, channel: u16, tag: &str) -> bool {
        let before = self.consumers.len();
        self.consumers
            .retain(|c| !(c.conn == conn && c.channel == channel && c.tag.as_str() == tag));
        if self.consumers.len() != before {
            self.exclusive_consumer = false;
            self.last_used_ms = now_ms();
            if self.next_consumer >= self.consumers.len() {
                self.next_consumer = 0;
            }
            true
        } else {
            false
        }
    }
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
                    },
                    1,
                )
                .unwrap();
            q.push(QueuedMessage::new(loc), 1, false);
        }
        let one = q.pop(&arena).unwrap();
        let two = q.pop(&arena).unwrap();
        q.requeue(two, &arena);
        q.requeue(one, &arena);
        let order: Vec<&[u8]> = q
            .messages
            .iter()
            .map(|m| arena.get(m.loc()).unwrap().body)
            .collect();
        assert_eq!(order, vec![b"1".as_ref(), b"2", b"3", b"4"]);
        assert!(q.messages[0].redelivered() && !q.messages[2].redelivered());
    }
}
