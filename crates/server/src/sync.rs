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

pub(crate) fn spawn(shared: Arc<Shared>, syncer: Arc<dyn Syncer>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("warren-sync".into())
        .spawn(move || {
            let mut failed = false;
            loop {
                let go = shared.sync.wait();
                if failed {
                    if !go {
                        break;
                    }
                    continue;
                }
                match syncer.sync() {
                    Ok(seq) => {
                        let mut core = shared.core.lock();
                        core.on_synced(seq);
                        shared.after_batch(&mut core);
                    }
                    Err(e) => {
                        tracing::error!(
                            "store sync failed; refusing further persistent writes: {e}"
                        );
                        failed = true;
                        shared
                            .store_failed
                            .store(true, std::sync::atomic::Ordering::Release);
                        let mut core = shared.core.lock();
                        core.on_store_failed();
                        shared.set_alarm(&mut core, None);
                        core.flush();
                    }
                }
                if !go {
                    break;
                }
            }
        })
        .expect("spawning the sync thread")
}
