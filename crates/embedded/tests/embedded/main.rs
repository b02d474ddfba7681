//! The embedded broker through real clients: lapin over the in-process
//! transport (publish / consume with confirms, restart with a data folder),
//! the TCP listener beside it, and service-kit switched to it by URL.

mod kit;
mod lapin_inproc;
mod memory;
mod shovel;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Waits for things the broker should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// A name unique in this test run (broker names, queues, folders).
pub fn uniq(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh data folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let d = std::env::temp_dir().join(uniq(prefix));
        let _ = std::fs::remove_dir_all(&d);
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An auto-ack (no_ack) lapin consumer on `queue`.
pub async fn auto_ack_consumer(ch: &lapin::Channel, queue: &str) -> lapin::Consumer {
    ch.basic_consume(
        queue,
        "",
        lapin::options::BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap()
}
