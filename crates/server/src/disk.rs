//! Resource alarms: the free-disk check, the memory watermark, and the
//! one place that decides what blocks publishers.
//!
//! The free-disk check does not rely on its period alone: a fast publisher
//! can write more than the margin (free space − limit) in a second. The
//! store and the arena count the bytes they write; whenever the bytes
//! written since the last reading reach half of the margin seen then, the
//! free space is read again (by the sync thread after a sync, and by the
//! ticker every tick), so the alarm is raised before the margin is used up.
//! The space is also read at least every `disk_check_interval_ms`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker_core::Broker;
use parking_lot::Mutex;

/// Counters of bytes written to the data folder's filesystem.
#[derive(Default)]
pub(crate) struct WriteCounters {
    /// The store's syncer (segment, acks and definitions files).
    pub store: Option<Arc<store::FileSyncer>>,
    /// Bytes the arena reserved for its segment files.
    pub arena: Option<Arc<AtomicU64>>,
}

impl WriteCounters {
    fn total_bytes(&self) -> u64 {
        let store = self.store.as_ref().map_or(0, |s| s.written_bytes());
        let arena = self.arena.as_ref().map_or(0, |a| a.load(Ordering::Relaxed));
        store.saturating_add(arena)
    }
}

/// The free-disk watch of the data folder.
pub(crate) struct DiskWatch {
    /// The data folder; `None` (in memory) never alarms.
    dir: Option<PathBuf>,
    /// Publishers are blocked below this much free space.
    limit_bytes: u64,
    /// What is written to that filesystem.
    counters: WriteCounters,
    /// Free space above the limit at the last reading (0 when below it).
    margin_bytes: AtomicU64,
    /// `counters.total_bytes()` at the last reading.
    written_at_reading_bytes: AtomicU64,
}

/// The limit from the settings: `disk_free_limit_relative` (a fraction of
/// RAM, like RabbitMQ's `disk_free_limit.relative`) when given, else
/// `disk_free_limit_bytes`.
pub(crate) fn limit_bytes(
    absolute_bytes: u64,
    relative: Option<f64>,
    ram_bytes: Option<u64>,
) -> u64 {
    match (relative, ram_bytes) {
        (Some(r), Some(ram)) if r.is_finite() && r >= 0.0 => (ram as f64 * r) as u64,
        _ => absolute_bytes,
    }
}

impl DiskWatch {
    pub fn new(dir: Option<PathBuf>, limit_bytes: u64, counters: WriteCounters) -> Self {
        Self {
            dir,
            limit_bytes,
            counters,
            margin_bytes: AtomicU64::new(0),
            written_at_reading_bytes: AtomicU64::new(0),
        }
    }

    /// The store's syncer (its I/O counters), when there is a data folder.
    pub fn store(&self) -> Option<&Arc<store::FileSyncer>> {
        self.counters.store.as_ref()
    }

    /// True when enough was written since the last reading that the margin
    /// could be half used up: read the free space again now.
    pub fn due(&self) -> bool {
        if self.dir.is_none() {
            return false;
        }
        let since = self
            .counters
            .total_bytes()
            .saturating_sub(self.written_at_reading_bytes.load(Ordering::Relaxed));
        since.saturating_mul(2) >= self.margin_bytes.load(Ordering::Relaxed)
    }

    /// The free-space limit, bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Reads the free space: the disk alarm's reason, if below the limit.
    pub fn check(&self) -> Option<String> {
        let dir = self.dir.as_deref()?;
        let written = self.counters.total_bytes();
        match store::disk_free_bytes(dir) {
            Ok(free) => {
                self.margin_bytes
                    .store(free.saturating_sub(self.limit_bytes), Ordering::Relaxed);
                self.written_at_reading_bytes
                    .store(written, Ordering::Relaxed);
                (free < self.limit_bytes)
                    .then(|| format!("low on disk: {free} bytes free, limit {}", self.limit_bytes))
            }
            Err(e) => {
                tracing::warn!("cannot read free disk space of {}: {e}", dir.display());
                None
            }
        }
    }
}

/// Why publishers are blocked, from every source.
#[derive(Default)]
pub(crate) struct Alarms {
    /// The free-disk alarm.
    pub disk: Option<String>,
    /// The memory watermark alarm.
    pub memory: Option<String>,
    /// The store is paused on a full disk (ENOSPC, EDQUOT).
    pub store_paused: Option<String>,
    /// The store failed for good (the alarm then stays raised).
    pub store_failed: bool,
}

impl Alarms {
    /// The one rule for what blocks publishers, and the reason they see.
    pub fn reason(&self) -> Option<String> {
        if self.store_failed {
            return Some("store failed; see the broker log".to_string());
        }
        let parts: Vec<&str> = [&self.store_paused, &self.disk, &self.memory]
            .into_iter()
            .filter_map(|r| r.as_deref())
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl Alarms {
    /// What clients are told (`connection.blocked`'s reason), as RabbitMQ
    /// words it: "low on " and the resources, joined by " & " ("low on
    /// disk", "low on memory", "low on memory & disk"). A paused or failed
    /// store counts as disk. The details go to the log.
    pub fn client_reason(&self) -> Option<String> {
        let disk = self.store_failed || self.store_paused.is_some() || self.disk.is_some();
        let parts: Vec<&str> = [(self.memory.is_some(), "memory"), (disk, "disk")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        (!parts.is_empty()).then(|| format!("low on {}", parts.join(" & ")))
    }
}

/// Updates `alarms` with `change` and passes the result to the core and to
/// the readers (`alarm`); a changed detailed reason is logged.
pub(crate) fn update(
    alarms: &Mutex<Alarms>,
    alarm: &tokio::sync::watch::Sender<bool>,
    core: &mut Broker,
    change: impl FnOnce(&mut Alarms),
) {
    let (before, after, client) = {
        let mut a = alarms.lock();
        let before = a.reason();
        change(&mut a);
        (before, a.reason(), a.client_reason())
    };
    if after != before {
        if let Some(r) = &after {
            tracing::info!("resource alarm details: {r}");
        }
    }
    alarm.send_replace(client.is_some());
    core.set_alarm(client);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_limit_is_a_fraction_of_ram() {
        assert_eq!(limit_bytes(50_000_000, None, Some(1 << 30)), 50_000_000);
        assert_eq!(limit_bytes(50_000_000, Some(1.5), Some(1000)), 1500);
        assert_eq!(limit_bytes(7, Some(1.0), None), 7);
        assert_eq!(limit_bytes(7, Some(f64::NAN), Some(1000)), 7);
    }

    #[test]
    fn every_source_blocks_and_failure_wins() {
        let mut a = Alarms::default();
        assert_eq!(a.reason(), None);
        a.store_paused = Some("disk full".into());
        a.memory = Some("memory".into());
        assert_eq!(a.reason().as_deref(), Some("disk full; memory"));
        assert_eq!(a.client_reason().as_deref(), Some("low on memory & disk"));
        a.store_failed = true;
        assert_eq!(
            a.reason().as_deref(),
            Some("store failed; see the broker log")
        );
        a.memory = None;
        assert_eq!(a.client_reason().as_deref(), Some("low on disk"));
        assert_eq!(Alarms::default().client_reason(), None);
    }
}
