//! Message counters kept on the hot path for the management API.
//!
//! Each counter lives in the part that owns what it counts (a queue, an
//! exchange, a channel) and is bumped by the one handler that does the
//! operation, where that thing is already in hand: an increment, never a
//! lookup, a lock, a clock read or an allocation. The management snapshot
//! (`inspect.rs`) copies them under the core lock; rates are differences
//! between snapshots, computed outside the core.
//!
//! Socket octets are counted by the server (it does the reads and writes)
//! in [`IoCounters`], shared with the core through `ConnInfo`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Per-queue message counts (RabbitMQ's queue `message_stats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages enqueued (`publish`).
    pub publish: u64,
    /// Deliveries to consumers that ack (`deliver`).
    pub deliver: u64,
    /// Deliveries to auto-ack consumers (`deliver_no_ack`).
    pub deliver_no_ack: u64,
    /// basic.get with acks (`get`).
    pub get: u64,
    /// basic.get without acks (`get_no_ack`).
    pub get_no_ack: u64,
    /// basic.get on an empty queue (`get_empty`).
    pub get_empty: u64,
    /// Deliveries or gets of a message delivered before (`redeliver`).
    pub redeliver: u64,
    /// Acknowledgements (`ack`).
    pub ack: u64,
}

/// Per-channel message counts (RabbitMQ's channel `message_stats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStats {
    /// basic.publish received (`publish`).
    pub publish: u64,
    /// Deliveries to consumers that ack (`deliver`).
    pub deliver: u64,
    /// Deliveries to auto-ack consumers (`deliver_no_ack`).
    pub deliver_no_ack: u64,
    /// basic.get with acks (`get`).
    pub get: u64,
    /// basic.get without acks (`get_no_ack`).
    pub get_no_ack: u64,
    /// Redelivered messages sent (`redeliver`).
    pub redeliver: u64,
    /// Deliveries acknowledged by the client (`ack`).
    pub ack: u64,
}

/// Per-exchange counts. `publish_in` is bumped where the publish looks the
/// exchange up anyway; cached publishes (which skip the lookup) are added
/// once per run of publishes (`Broker::flush_publish_hits`); unroutable
/// messages are counted on the unroutable path (not the hot path), and
/// `publish_out` is reported as `publish_in - unroutable` (RabbitMQ counts
/// one per destination queue; we count messages).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Messages published to the exchange (`publish_in`).
    pub publish_in: u64,
    /// Of those, messages that reached no queue.
    pub unroutable: u64,
}

/// Bytes and socket operations of one connection, counted by the server:
/// one relaxed add per socket read or write (not per message). The reader
/// and the writer run on different threads but share a cache line: at one
/// add per socket call that costs nothing measurable, and padding each half
/// to its own line would cost 96 bytes per connection.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Counted by the reader.
    recv: Half,
    /// Counted by the writer (and write-through).
    send: Half,
}

/// Octets and operations of one direction.
#[derive(Debug, Default)]
struct Half {
    /// Bytes.
    oct: AtomicU64,
    /// Socket operations.
    cnt: AtomicU64,
}

impl IoCounters {
    /// Counts one read of `n` bytes.
    #[inline]
    pub fn received(&self, n: usize) {
        self.recv.oct.fetch_add(n as u64, Ordering::Relaxed);
        self.recv.cnt.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one write of `n` bytes.
    #[inline]
    pub fn sent(&self, n: usize) {
        self.send.oct.fetch_add(n as u64, Ordering::Relaxed);
        self.send.cnt.fetch_add(1, Ordering::Relaxed);
    }

    /// (recv_oct, recv_cnt, send_oct, send_cnt) now.
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.recv.oct.load(Ordering::Relaxed),
            self.recv.cnt.load(Ordering::Relaxed),
            self.send.oct.load(Ordering::Relaxed),
            self.send.cnt.load(Ordering::Relaxed),
        )
    }
}
