//! Broker-wide counters that never decrease (RabbitMQ's `rabbitmq_global_*`
//! and churn counters, shown by the Prometheus endpoint).
//!
//! Per-object counters (`stats.rs`) vanish with their object, so a sum over
//! the objects can shrink. Here an object's counters are folded into the
//! `retired_*` totals when it goes (queue deletion, channel cleanup): the
//! global value is "live objects + retired", computed outside the core from
//! the snapshot, at no cost on the hot path. What no object counts is
//! counted here directly: routed messages and the message-size histogram
//! (a few compares and three adds per routed publish), and, off the plain
//! path, confirms, unroutable messages, dead-lettering and churn.

use crate::queue_type::QueueType;
use crate::stats::{ChannelStats, QueueStats};

/// Queue types counted apart (index: [`queue_type_index`]).
pub const QUEUE_TYPES_MAX: usize = 2;

/// RabbitMQ's `queue_type` label of each index.
pub const QUEUE_TYPE_LABELS: [&str; QUEUE_TYPES_MAX] =
    ["rabbit_classic_queue", "rabbit_quorum_queue"];

/// Dead-letter reasons, in RabbitMQ's `x-death` spelling (index order).
pub const DEAD_LETTER_REASONS: [&str; 4] = ["maxlen", "expired", "rejected", "delivery_limit"];

/// Upper bounds of the message-size histogram's buckets, bytes
/// (RabbitMQ's `rabbitmq_message_size_bytes`); one more bucket is +Inf.
pub const MESSAGE_SIZE_BUCKETS_BYTES: [u64; 8] = [
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
];

/// The index of a queue type in the per-type arrays.
#[inline]
pub fn queue_type_index(t: QueueType) -> usize {
    usize::from(t.is_quorum())
}

/// The broker-wide counters (see the module doc). All only ever grow.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GlobalStats {
    /// Publishes routed to at least one queue.
    pub routed: u64,
    /// Publishes received on channels in confirm mode.
    pub received_confirm: u64,
    /// Publishes confirmed with basic.ack.
    pub confirmed: u64,
    /// Unroutable publishes without `mandatory` (dropped).
    pub unroutable_dropped: u64,
    /// Unroutable `mandatory` publishes (returned).
    pub unroutable_returned: u64,
    /// Messages dead-lettered: [queue type][reason][0 = no dead-letter
    /// exchange (`disabled`), 1 = republished (`at_most_once`)].
    pub dead_lettered: [[[u64; 2]; DEAD_LETTER_REASONS.len()]; QUEUE_TYPES_MAX],
    /// Routed-or-not publishes per size bucket (not cumulative; the last
    /// is the +Inf bucket).
    pub size_buckets: [u64; MESSAGE_SIZE_BUCKETS_BYTES.len() + 1],
    /// Sum of the body sizes counted in `size_buckets`, bytes.
    pub size_sum_bytes: u64,
    /// Counters of deleted queues, per queue type.
    pub retired_queues: [QueueStats; QUEUE_TYPES_MAX],
    /// Counters of closed channels.
    pub retired_channels: ChannelStats,
    /// Client connections opened (management sessions not counted).
    pub connections_opened: u64,
    /// Channels opened by clients.
    pub channels_opened: u64,
    /// queue.declare calls that succeeded (passive ones included).
    pub queues_declared: u64,
    /// Queues created by a declare.
    pub queues_created: u64,
    /// Queues deleted (by any cause).
    pub queues_deleted: u64,
}

impl GlobalStats {
    /// Counts one publish of `body_bytes` in the size histogram.
    #[inline]
    pub fn observe_size(&mut self, body_bytes: usize) {
        let n = body_bytes as u64;
        let mut i = 0;
        while i < MESSAGE_SIZE_BUCKETS_BYTES.len() && n > MESSAGE_SIZE_BUCKETS_BYTES[i] {
            i += 1;
        }
        self.size_buckets[i] += 1;
        self.size_sum_bytes += n;
    }

    /// Counts one dead-lettered message.
    pub fn dead_letter(&mut self, t: QueueType, reason: &str, republished: bool) {
        let Some(r) = DEAD_LETTER_REASONS.iter().position(|x| *x == reason) else {
            return;
        };
        self.dead_lettered[queue_type_index(t)][r][usize::from(republished)] += 1;
    }

    /// Folds a deleted queue's counters in.
    pub fn retire_queue(&mut self, t: QueueType, s: &QueueStats) {
        let r = &mut self.retired_queues[queue_type_index(t)];
        r.publish += s.publish;
        r.deliver += s.deliver;
        r.deliver_no_ack += s.deliver_no_ack;
        r.get += s.get;
        r.get_no_ack += s.get_no_ack;
        r.get_empty += s.get_empty;
        r.redeliver += s.redeliver;
        r.ack += s.ack;
        self.queues_deleted += 1;
    }

    /// Folds a closing channel's counters in, leaving them zero (so a
    /// second cleanup of the same channel adds nothing).
    pub fn retire_channel(&mut self, s: &mut ChannelStats) {
        let s = std::mem::take(s);
        let r = &mut self.retired_channels;
        r.publish += s.publish;
        r.deliver += s.deliver;
        r.deliver_no_ack += s.deliver_no_ack;
        r.get += s.get;
        r.get_no_ack += s.get_no_ack;
        r.redeliver += s.redeliver;
        r.ack += s.ack;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_rabbitmq_buckets() {
        let mut g = GlobalStats::default();
        for n in [0, 100, 101, 1_000, 100_000_000, 100_000_001] {
            g.observe_size(n);
        }
        assert_eq!(g.size_buckets, [2, 2, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(g.size_sum_bytes, 200_001_202);
    }

    #[test]
    fn a_channel_retired_twice_counts_once() {
        let mut g = GlobalStats::default();
        let mut s = ChannelStats {
            publish: 3,
            ..Default::default()
        };
        g.retire_channel(&mut s);
        g.retire_channel(&mut s);
        assert_eq!(g.retired_channels.publish, 3);
    }
}
