//! A queue: its ready messages in order, and the consumers it feeds.

use std::collections::VecDeque;

use amqp_codec::{FieldTable, ShortStr};

use crate::message::{now_ms, Message, QueuedMessage};
use crate::queue_args::QueueLimits;
use crate::ConnId;

/// A consumer as the queue sees it: who to deliver to. Credit (prefetch)
/// lives with the channel, which owns the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRef {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortStr,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub durable: bool,
    /// Owning connection of an exclusive queue.
    pub exclusive_owner: Option<ConnId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Ready messages, ordered by `position`.
    pub messages: VecDeque<QueuedMessage>,
    pub consumers: Vec<ConsumerRef>,
    /// Set while one consumer holds exclusive access.
    pub exclusive_consumer: bool,
    /// Index in `consumers` to try first (round-robin).
    pub next_consumer: usize,
    /// Auto-delete applies only after the queue has had a consumer.
    pub had_consumer: bool,
    /// Next `position` for a newly enqueued message.
    next_position: u64,
    /// Parsed behaviour-changing arguments.
    pub limits: QueueLimits,
    /// Body bytes of ready messages (for x-max-length-bytes).
    pub ready_bytes: u64,
    /// Last time the queue was used (declare, get, consume), for x-expires.
    pub last_used_ms: u64,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<crate::ConnId>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Queue {
        let limits = QueueLimits::parse(&arguments).unwrap_or_default();
        Queue {
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
            next_position: 0,
        }
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.messages.len()).unwrap_or(u32::MAX)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    /// Appends a newly routed message.
    pub fn push(
        &mut self,
        message: std::sync::Arc<Message>,
        store_id: Option<u64>,
        expires_at_ms: u64,
    ) {
        let position = self.next_position;
        self.next_position += 1;
        self.ready_bytes += message.body.len() as u64;
        self.messages.push_back(QueuedMessage {
            message,
            position,
            redelivered: false,
            store_id,
            expires_at_ms,
        });
    }

    /// Takes the oldest ready message.
    pub fn pop(&mut self) -> Option<QueuedMessage> {
        let m = self.messages.pop_front()?;
        self.ready_bytes = self.ready_bytes.saturating_sub(m.message.body.len() as u64);
        Some(m)
    }

    /// Puts a message back where it was, flagged redelivered.
    pub fn requeue(&mut self, mut m: QueuedMessage) {
        m.redelivered = true;
        self.ready_bytes += m.message.body.len() as u64;
        // Requeues usually land at or near the front: search from there.
        let at = self.messages.partition_point(|q| q.position < m.position);
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

    /// Pops head messages whose TTL has passed. `strict` (used right before
    /// delivering) keeps a message that expires in this very millisecond, so
    /// TTL 0 messages still reach a consumer that is ready now.
    pub fn pop_expired(&mut self, now: u64, strict: bool) -> Option<QueuedMessage> {
        let head = self.messages.front()?;
        let expired = if strict {
            now > head.expires_at_ms
        } else {
            now >= head.expires_at_ms
        };
        if expired {
            self.pop()
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
    use crate::message::Message;
    use bytes::Bytes;
    use std::sync::Arc;

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from("q"),
            properties: Bytes::new(),
            body: Bytes::from_static(body.as_bytes()),
            persistent: false,
        })
    }

    #[test]
    fn requeue_restores_original_position() {
        let mut q = Queue::new("q".into(), false, None, false, FieldTable::default());
        for b in ["1", "2", "3", "4"] {
            q.push(msg(b), None, u64::MAX);
        }
        let one = q.pop().unwrap();
        let two = q.pop().unwrap();
        q.requeue(two);
        q.requeue(one);
        let order: Vec<&[u8]> = q.messages.iter().map(|m| m.message.body.as_ref()).collect();
        assert_eq!(order, vec![b"1".as_ref(), b"2", b"3", b"4"]);
        assert!(q.messages[0].redelivered && !q.messages[2].redelivered);
    }
}
