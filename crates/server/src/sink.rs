//! The per-connection output queue between the core and the writer task.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use broker_core::ConnSink;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct ConnIo {
    /// Encoded frames waiting for the socket, in order.
    chunks: Mutex<Vec<Bytes>>,
    /// Bytes in `chunks` plus bytes being written right now.
    pending: AtomicUsize,
    pub notify: Notify,
    /// The reader is done: the writer flushes what is left and stops.
    pub closed: AtomicBool,
}

impl ConnIo {
    /// Takes everything queued so far.
    pub fn take(&self, into: &mut Vec<Bytes>) {
        std::mem::swap(&mut *self.chunks.lock(), into);
    }
    pub fn written(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::AcqRel);
    }
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

impl ConnSink for ConnIo {
    fn send(&self, bytes: Bytes) {
        self.pending.fetch_add(bytes.len(), Ordering::AcqRel);
        self.chunks.lock().push(bytes);
        self.notify.notify_one();
    }
    fn pending_bytes(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}
