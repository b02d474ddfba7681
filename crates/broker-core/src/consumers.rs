//! Which consumer of a queue gets the next message: consumer priorities
//! (`x-priority`), round-robin among equals, single active consumer, and
//! the one credit check. Every delivery path (`dispatch_inner`, its
//! lone-consumer loop, `deliver_direct`) picks through `pick_consumer`, so
//! a fast path never serves a consumer the general path would not.
//!
//! Layout: `Queue::consumers` is ordered by priority, highest first, and by
//! registration within a priority (RabbitMQ's priority queue of consumers),
//! so the common case — every priority 0 — is one group scanned from
//! `next_consumer` exactly as before. On a single-active-consumer queue the
//! active consumer is at index 0 and only it is eligible; the others follow
//! in that same order, so removing index 0 makes the right one active
//! (RabbitMQ 3.10: the first to register is active; when it goes, the
//! highest-priority, earliest-registered remaining one takes over).

use rustc_hash::FxHashMap;

use crate::queue::{ConsumerRef, Queue};
use crate::session::{ChannelConsumer, Conn};
use crate::ConnId;

/// A run of consumers of equal priority below the first (highest) group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerGroup {
    /// Index in `Queue::consumers` of the group's first consumer; the group
    /// ends where the next one starts (or at the end of the list).
    pub start: usize,
    /// Index to try first within the group (round-robin).
    pub next: usize,
}

/// Prefetch credit: may this consumer take one more message now, given its
/// channel's unacked count and global prefetch (0 = unlimited)? Takes the
/// channel's fields, not the channel, so callers can hold the consumer
/// mutably meanwhile.
#[inline]
pub(crate) fn has_credit(
    cons: &ChannelConsumer,
    channel_unacked: usize,
    prefetch_channel: u32,
) -> bool {
    cons.no_ack
        || ((cons.prefetch == 0 || cons.unacked < cons.prefetch)
            && (prefetch_channel == 0 || (channel_unacked as u64) < u64::from(prefetch_channel)))
}

/// Can `k` receive a message now: connection open with room in its socket
/// budget (a full one is marked throttled, to resume on drain), channel
/// open and flowing, and credit.
#[inline]
fn can_receive(
    k: &ConsumerRef,
    conns: &mut FxHashMap<ConnId, Box<Conn>>,
    write_max_bytes: usize,
) -> bool {
    conns
        .get_mut(&k.conn)
        .is_some_and(|c| can_receive_on(k, c, write_max_bytes))
}

/// `can_receive` for a consumer whose connection the caller holds (`c` is
/// `k.conn`'s): one lookup fewer when the caller needs the connection next.
#[inline]
pub(crate) fn can_receive_on(k: &ConsumerRef, c: &mut Conn, write_max_bytes: usize) -> bool {
    if c.closing {
        return false;
    }
    if c.out.len() + c.info.sink.pending_bytes() >= write_max_bytes {
        c.throttled = true;
        return false;
    }
    let Some(ch) = c.channels.get(&k.channel) else {
        return false;
    };
    if !ch.flow_active || ch.closing {
        return false;
    }
    // An auto-ack consumer always has credit: no lookup by tag.
    k.no_ack
        || ch
            .consumers
            .get(&k.tag)
            .is_some_and(|cons| has_credit(cons, ch.unacked.len(), ch.prefetch_channel))
}

/// The first consumer in `[start, end)` from `cursor` (wrapping) that can
/// receive now.
#[inline]
fn scan(
    q: &Queue,
    start: usize,
    end: usize,
    cursor: usize,
    conns: &mut FxHashMap<ConnId, Box<Conn>>,
    write_max_bytes: usize,
) -> Option<usize> {
    let len = end - start;
    let from = if (start..end).contains(&cursor) {
        cursor - start
    } else {
        0
    };
    (0..len)
        .map(|i| start + (from + i) % len)
        .find(|&idx| can_receive(&q.consumers[idx], conns, write_max_bytes))
}

/// The consumer that gets the queue's next message, if any can take it:
/// the highest priority group with a consumer that can receive, round-robin
/// within it; on a single-active-consumer queue only the active one.
pub(crate) fn pick_consumer(
    q: &Queue,
    conns: &mut FxHashMap<ConnId, Box<Conn>>,
    write_max_bytes: usize,
) -> Option<usize> {
    let n = q.consumers.len();
    if n == 0 {
        return None;
    }
    if q.limits.single_active_consumer {
        return can_receive(&q.consumers[0], conns, write_max_bytes).then_some(0);
    }
    let top_end = q.lower_groups.first().map_or(n, |g| g.start);
    if let Some(idx) = scan(q, 0, top_end, q.next_consumer, conns, write_max_bytes) {
        return Some(idx);
    }
    for (i, g) in q.lower_groups.iter().enumerate() {
        let end = q.lower_groups.get(i + 1).map_or(n, |h| h.start);
        if let Some(idx) = scan(q, g.start, end, g.next, conns, write_max_bytes) {
            return Some(idx);
        }
    }
    None
}

impl Queue {
    /// True when at most one consumer can ever be picked (one consumer, or
    /// single active consumer): the delivery loop may then serve it back to
    /// back without picking again.
    #[inline]
    pub(crate) fn one_eligible_consumer(&self) -> bool {
        self.consumers.len() == 1 || self.limits.single_active_consumer
    }

    /// `idx` was just served: the next turn in its group goes to the one
    /// after it.
    #[inline]
    pub(crate) fn advance_consumer(&mut self, idx: usize) {
        let n = self.consumers.len();
        let top_end = self.lower_groups.first().map_or(n, |g| g.start);
        if idx < top_end {
            self.next_consumer = if idx + 1 >= top_end { 0 } else { idx + 1 };
            return;
        }
        let Some(gi) = self.lower_groups.iter().rposition(|g| g.start <= idx) else {
            return;
        };
        let end = self.lower_groups.get(gi + 1).map_or(n, |h| h.start);
        let g = &mut self.lower_groups[gi];
        g.next = if idx + 1 >= end { g.start } else { idx + 1 };
    }

    /// Registers a consumer after those of higher or equal priority (on a
    /// single-active-consumer queue, never before the active one).
    pub(crate) fn add_consumer(&mut self, k: ConsumerRef) {
        let top = self.consumers.first().map(|c| c.priority);
        let base = usize::from(self.limits.single_active_consumer && !self.consumers.is_empty());
        let at = base
            + self.consumers[base..]
                .iter()
                .position(|c| c.priority < k.priority)
                .unwrap_or(self.consumers.len() - base);
        self.consumers.insert(at, k);
        self.consumers_changed(top);
    }

    /// Recomputes the priority groups after consumers were added or removed;
    /// `old_top` is the first consumer's priority before the change. Cursors
    /// are kept per priority where still in range.
    pub(crate) fn consumers_changed(&mut self, old_top: Option<i64>) {
        let n = self.consumers.len();
        let top = self.consumers.first().map(|c| c.priority);
        if self.limits.single_active_consumer || n == 0 {
            self.lower_groups.clear();
            self.next_consumer = 0;
            return;
        }
        let old: Vec<(i64, usize)> = self
            .lower_groups
            .iter()
            .map(|g| {
                (
                    self.consumers.get(g.start).map_or(i64::MIN, |c| c.priority),
                    g.next,
                )
            })
            .collect();
        let old_top_next = self.next_consumer;
        self.lower_groups.clear();
        for i in 1..n {
            if self.consumers[i].priority != self.consumers[i - 1].priority {
                self.lower_groups.push(LowerGroup { start: i, next: i });
            }
        }
        let top_end = self.lower_groups.first().map_or(n, |g| g.start);
        self.next_consumer = if top == old_top && old_top_next < top_end {
            old_top_next
        } else {
            0
        };
        let ends: Vec<usize> = (0..self.lower_groups.len())
            .map(|i| self.lower_groups.get(i + 1).map_or(n, |h| h.start))
            .collect();
        for (g, end) in self.lower_groups.iter_mut().zip(ends) {
            let p = self.consumers[g.start].priority;
            if let Some(&(_, next)) = old.iter().find(|(op, _)| *op == p) {
                if (g.start..end).contains(&next) {
                    g.next = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::{FieldTable, FieldValue};

    fn k(tag: &str, priority: i64) -> ConsumerRef {
        ConsumerRef {
            conn: 1,
            channel: 1,
            tag: tag.into(),
            no_ack: true,
            priority,
        }
    }

    fn tags(q: &Queue) -> Vec<&str> {
        q.consumers.iter().map(|c| c.tag.as_str()).collect()
    }

    #[test]
    fn ordered_by_priority_then_registration() {
        let mut q = Queue::new("q".into(), false, None, false, FieldTable::default());
        for (t, p) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)] {
            q.add_consumer(k(t, p));
        }
        assert_eq!(tags(&q), ["b", "d", "a", "c", "e"]);
        assert_eq!(
            q.lower_groups,
            [
                LowerGroup { start: 2, next: 2 },
                LowerGroup { start: 4, next: 4 }
            ]
        );
        // Round-robin stays within each group.
        q.advance_consumer(0);
        assert_eq!(q.next_consumer, 1);
        q.advance_consumer(1);
        assert_eq!(q.next_consumer, 0);
        q.advance_consumer(2);
        assert_eq!(q.lower_groups[0].next, 3);
        q.advance_consumer(3);
        assert_eq!(q.lower_groups[0].next, 2);
        q.advance_consumer(4);
        assert_eq!(q.lower_groups[1].next, 4);
        // Same priorities everywhere: one group, cursor as before.
        assert!(q.remove_consumer(1, 1, "b") && q.remove_consumer(1, 1, "d"));
        assert!(q.remove_consumer(1, 1, "e"));
        assert_eq!(tags(&q), ["a", "c"]);
        assert!(q.lower_groups.is_empty());
    }

    #[test]
    fn single_active_keeps_the_active_first() {
        let mut args = FieldTable::new();
        args.insert("x-single-active-consumer".into(), FieldValue::Bool(true));
        let mut q = Queue::new("q".into(), false, None, false, args);
        q.add_consumer(k("first", 0));
        q.add_consumer(k("low", -3));
        q.add_consumer(k("high", 9));
        q.add_consumer(k("high2", 9));
        assert_eq!(tags(&q), ["first", "high", "high2", "low"]);
        assert!(q.lower_groups.is_empty() && q.one_eligible_consumer());
        assert!(q.remove_consumer(1, 1, "first"));
        assert_eq!(tags(&q)[0], "high");
        assert!(q.remove_consumer(1, 1, "high"));
        assert_eq!(tags(&q)[0], "high2");
    }
}
