//! Counters of the store's file I/O (RabbitMQ's `rabbitmq_io_*` metrics):
//! appends and fdatasyncs with the time they took. Only the sync thread
//! updates them, once per file touched by a batch (never per message);
//! readers (the metrics scrape) load them with relaxed ordering.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A copy of the counters at one moment (all only ever grow).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IoSnapshot {
    /// Appends to the data folder's files.
    pub write_ops: u64,
    /// Bytes appended.
    pub write_bytes: u64,
    /// Time spent in appends, microseconds.
    pub write_time_us: u64,
    /// fdatasyncs of files and fsyncs of the folder.
    pub sync_ops: u64,
    /// Time spent in syncs, microseconds.
    pub sync_time_us: u64,
}

/// The live counters, owned by the [`crate::FileSyncer`].
#[derive(Debug, Default)]
pub(crate) struct IoStats {
    /// Appends.
    write_ops: AtomicU64,
    /// Bytes appended.
    write_bytes: AtomicU64,
    /// Time in appends, microseconds.
    write_time_us: AtomicU64,
    /// Syncs (files and the folder).
    sync_ops: AtomicU64,
    /// Time in syncs, microseconds.
    sync_time_us: AtomicU64,
}

fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl IoStats {
    /// Counts one append of `bytes` that began at `started`.
    pub fn wrote(&self, bytes: usize, started: Instant) {
        self.write_ops.fetch_add(1, Ordering::Relaxed);
        self.write_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.write_time_us
            .fetch_add(micros_since(started), Ordering::Relaxed);
    }

    /// Counts one sync that began at `started`.
    pub fn synced(&self, started: Instant) {
        self.sync_ops.fetch_add(1, Ordering::Relaxed);
        self.sync_time_us
            .fetch_add(micros_since(started), Ordering::Relaxed);
    }

    /// The bytes appended so far.
    pub fn write_bytes(&self) -> u64 {
        self.write_bytes.load(Ordering::Relaxed)
    }

    /// Every counter now.
    pub fn snapshot(&self) -> IoSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoSnapshot {
            write_ops: l(&self.write_ops),
            write_bytes: l(&self.write_bytes),
            write_time_us: l(&self.write_time_us),
            sync_ops: l(&self.sync_ops),
            sync_time_us: l(&self.sync_time_us),
        }
    }
}
