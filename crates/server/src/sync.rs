//! The group-commit thread: whenever the core waits on the store, write and
//! fsync everything buffered so far in one go, then release the confirms it
//! covers. Publishers that arrive during an fsync share the next one.

use std::sync::Arc;
use std::thread::JoinHandle;

use broker_core::persist::Syncer;
use parking_lot::{Condvar, Mutex};

use crate::Shared;

#[derive(Default)]
pub(crate) struct SyncSignal {
    state: Mutex<(bool, bool)>, // (wanted, stop)
    cond: Condvar,
}

impl SyncSignal {
    pub fn wake(&self) {
        let mut s = self.state.lock();
        if !s.0 {
            s.0 = true;
            self.cond.notify_one();
        }
    }
    pub fn stop(&self) {
        self.state.lock().1 = true;
        self.cond.notify_one();
    }
    /// Sleeps `period` unless asked to stop (false then). Wake-ups are
    /// ignored: while the store is paused on a full disk it retries at
    /// its own pace, not once per batch of frames.
    fn sleep(&self, period: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + period;
        let mut s = self.state.lock();
        while !s.1 {
            if self.cond.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        !s.1
    }
    /// Blocks until a sync is wanted; false when asked to stop.
    fn wait(&self) -> bool {
        let mut s = self.state.lock();
        while !s.0 && !s.1 {
            self.cond.wait(&mut s);
        }
        s.0 = false;
        !s.1
    }
}

pub(crate) fn spawn(shared: Arc<Shared>, syncer: Arc<store::FileSyncer>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("warren-sync".into())
        .spawn(move || run(&shared, &syncer))
        .expect("spawning the sync thread")
}

/// The sync loop. A full disk pauses the store (see docs/storage.md): the
/// alarm blocks publishers, and the store is retried every
/// `store_retry_interval_ms` until it resumes by itself. Any other error
/// fails it for good.
fn run(shared: &Shared, syncer: &store::FileSyncer) {
    let retry = std::time::Duration::from_millis(shared.config.store_retry_interval_ms.max(1));
    let mut failed = false;
    let mut paused: Option<String> = None;
    loop {
        let go = if paused.is_some() {
            shared.sync.sleep(retry)
        } else {
            shared.sync.wait()
        };
        if failed {
            if !go {
                break;
            }
            continue;
        }
        let result = syncer.sync();
        let now_paused = syncer.paused();
        // Read the free space outside the core lock when it is due, or
        // when the pause state changes (so the disk alarm is current).
        let disk = (shared.disk.due() || now_paused != paused).then(|| shared.disk.check());
        match result {
            Ok(seq) => {
                let mut core = shared.core.lock();
                core.on_synced(seq);
                if disk.is_some() || now_paused != paused {
                    shared.update_alarms(&mut core, |a| {
                        a.store_paused = now_paused.clone();
                        if let Some(d) = disk {
                            a.disk = d;
                        }
                    });
                }
                shared.after_batch(&mut core);
            }
            Err(e) if !syncer.failed() => {
                // Paused on a full disk: confirms wait, publishers are blocked.
                if now_paused != paused {
                    tracing::warn!("store paused: {e}");
                    let mut core = shared.core.lock();
                    shared.update_alarms(&mut core, |a| {
                        a.store_paused = now_paused.clone();
                        if let Some(d) = disk {
                            a.disk = d;
                        }
                    });
                    core.flush();
                }
            }
            Err(e) => {
                tracing::error!("store sync failed; refusing further persistent writes: {e}");
                failed = true;
                let mut core = shared.core.lock();
                core.on_store_failed();
                shared.update_alarms(&mut core, |a| a.store_failed = true);
                core.flush();
            }
        }
        paused = now_paused;
        if !go {
            break;
        }
    }
}
