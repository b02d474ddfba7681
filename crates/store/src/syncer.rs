//! The I/O half: takes the buffered records, writes and fdatasyncs them,
//! creates and deletes files. Runs outside the broker's lock.

use std::collections::BTreeMap;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use broker_core::persist::{MessageId, PersistError, Seq, Syncer};

use crate::backend::Backend;
use crate::{format, lock};

/// Bytes for one segment file within a batch.
pub(crate) struct SegmentChunk {
    pub segment: u32,
    /// `Some(first message id)` when the file must be created (with a header
    /// carrying that id) before these bytes are appended.
    pub create_with_base: Option<MessageId>,
    pub bytes: Vec<u8>,
}

/// Bytes for one acks file within a batch.
#[derive(Default)]
pub(crate) struct AcksChunk {
    /// The file does not exist yet and must be created first.
    pub create: bool,
    pub bytes: Vec<u8>,
}

/// Records appended since the last sync, in the form the syncer writes them.
#[derive(Default)]
pub(crate) struct Pending {
    /// Framed records for `defs.log`.
    pub defs: Vec<u8>,
    /// Framed message records, in segment order.
    pub segments: Vec<SegmentChunk>,
    /// Framed release records by segment number.
    pub acks: BTreeMap<u32, AcksChunk>,
    /// Settled segments to delete after this batch is durable, with whether
    /// each has an acks file.
    pub delete: Vec<(u32, bool)>,
    /// Seq of the last record in this batch (or before it, if it is empty).
    pub last_seq: Seq,
    /// Set by the first I/O error; from then on everything fails.
    pub failed: Option<String>,
}

/// State shared by the store (appending) and the syncer (draining).
#[derive(Default)]
pub(crate) struct Shared {
    /// The only lock on the append path; held for a memcpy.
    pub pending: Mutex<Pending>,
    /// Mirrors `Pending::failed.is_some()` so calls that append nothing can
    /// still report the failure without taking the lock.
    pub failed: AtomicBool,
}

impl Shared {
    /// Err(Failed) once the store has failed.
    pub fn check(&self) -> Result<(), PersistError> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let reason = lock(&self.pending).failed.clone().unwrap_or_default();
        Err(PersistError::Failed(reason))
    }
}

/// Writes and syncs what [`crate::FileStore`] buffered. Share it in an `Arc`;
/// concurrent `sync` calls are serialised, and a caller that waited for
/// another's sync usually finds its records already durable.
pub struct FileSyncer {
    /// The buffer filled by the store.
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    /// Highest durable seq. Held for a whole sync, which serialises syncs.
    durable_seq: Mutex<Seq>,
}

impl FileSyncer {
    pub(crate) fn new(shared: Arc<Shared>, backend: Arc<dyn Backend>) -> Self {
        Self {
            shared,
            backend,
            durable_seq: Mutex::new(0),
        }
    }

    /// Highest seq known durable, without syncing.
    pub fn durable_seq(&self) -> Seq {
        *lock(&self.durable_seq)
    }

    /// Writes one batch. Order matters for crash safety: data is made durable
    /// before any directory change that depends on it, and a segment is
    /// removed (durably) before its acks file, so releases never vanish
    /// while the messages they release still exist.
    fn write(&self, batch: &Pending) -> std::io::Result<()> {
        let b = self.backend.as_ref();
        let mut dir_dirty = false;
        if !batch.defs.is_empty() {
            b.append(format::DEFS_FILE, &batch.defs)?;
            b.sync(format::DEFS_FILE)?;
        }
        for (i, chunk) in batch.segments.iter().enumerate() {
            let name = format::segment_file(chunk.segment);
            if let Some(base) = chunk.create_with_base {
                b.create(&name)?;
                b.append(&name, &format::encode_header(format::MAGIC_SEGMENT, base))?;
                dir_dirty = true;
            }
            b.append(&name, &chunk.bytes)?;
            let last_of_segment = batch
                .segments
                .get(i + 1)
                .is_none_or(|c| c.segment != chunk.segment);
            if last_of_segment {
                b.sync(&name)?;
            }
        }
        for (segment, chunk) in &batch.acks {
            let name = format::acks_file(*segment);
            if chunk.create {
                b.create(&name)?;
                b.append(
                    &name,
                    &format::encode_header(format::MAGIC_ACKS, u64::from(*segment)),
                )?;
                dir_dirty = true;
            }
            b.append(&name, &chunk.bytes)?;
            b.sync(&name)?;
        }
        if dir_dirty {
            b.sync_dir()?;
        }
        if !batch.delete.is_empty() {
            for (segment, _) in &batch.delete {
                b.remove(&format::segment_file(*segment))?;
            }
            b.sync_dir()?;
            let mut removed_acks = false;
            for (segment, has_acks) in &batch.delete {
                if *has_acks {
                    b.remove(&format::acks_file(*segment))?;
                    removed_acks = true;
                }
            }
            if removed_acks {
                b.sync_dir()?;
            }
        }
        Ok(())
    }
}

impl Syncer for FileSyncer {
    fn sync(&self) -> Result<Seq, PersistError> {
        let mut durable = lock(&self.durable_seq);
        let batch = {
            let mut p = lock(&self.shared.pending);
            if let Some(e) = &p.failed {
                return Err(PersistError::Failed(e.clone()));
            }
            Pending {
                defs: mem::take(&mut p.defs),
                segments: mem::take(&mut p.segments),
                acks: mem::take(&mut p.acks),
                delete: mem::take(&mut p.delete),
                last_seq: p.last_seq,
                failed: None,
            }
        };
        if let Err(e) = self.write(&batch) {
            let msg = e.to_string();
            tracing::error!("store failed, refusing further writes: {msg}");
            lock(&self.shared.pending).failed = Some(msg.clone());
            self.shared.failed.store(true, Ordering::Release);
            return Err(PersistError::Io(msg));
        }
        *durable = batch.last_seq;
        Ok(batch.last_seq)
    }
}
