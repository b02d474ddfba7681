//! The I/O half: takes the buffered records, writes and fdatasyncs them,
//! creates and deletes files. Runs outside the broker's lock.

use std::collections::BTreeMap;
use std::mem;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use broker_core::persist::{MessageId, PersistError, Seq, Syncer};

use crate::backend::Backend;
use crate::io_stats::{IoSnapshot, IoStats};
use crate::{format, lock};

/// Bytes for one segment file within a batch.
pub(crate) struct SegmentChunk {
    pub segment: u32,
    /// File offset of `bytes[0]` (so a record can be read from here until
    /// it is written: `FileStore::read_message`).
    pub base_offset: u64,
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
    /// Framed message records, in segment order. Shared only with
    /// `in_flight` (a chunk here is never in flight, so it can grow).
    pub segments: Vec<Arc<SegmentChunk>>,
    /// The chunks of the batch the syncer is writing: records there are
    /// read from here until the batch is written (or put back). Every
    /// message record is in `segments`, in `in_flight`, or written to its
    /// file for good, which is what lets readers skip the lock for bytes
    /// of a file below any chunk of it.
    pub in_flight: Vec<Arc<SegmentChunk>>,
    /// Framed release records by segment number.
    pub acks: BTreeMap<u32, AcksChunk>,
    /// Settled segments to delete after this batch is durable, with whether
    /// each has an acks file.
    pub delete: Vec<(u32, bool)>,
    /// A message record here is a copy of a message released at the same
    /// time (`Persistence::append_copy`): settled segments may hold the
    /// original, so they are not deleted before this batch is durable.
    pub copies: bool,
    /// Seq of the last record in this batch (or before it, if it is empty).
    pub last_seq: Seq,
    /// Set by the first I/O error other than a full disk; from then on
    /// everything fails.
    pub failed: Option<String>,
    /// Set while the disk is full (ENOSPC, EDQUOT): new messages are
    /// refused, everything else is buffered, and each sync retries.
    pub paused: Option<String>,
}

impl Pending {
    /// Moves the batch out, leaving the failure state behind.
    fn take(&mut self) -> Pending {
        let segments = mem::take(&mut self.segments);
        self.in_flight.clone_from(&segments);
        Pending {
            defs: mem::take(&mut self.defs),
            segments,
            in_flight: Vec::new(),
            acks: mem::take(&mut self.acks),
            delete: mem::take(&mut self.delete),
            copies: mem::take(&mut self.copies),
            last_seq: self.last_seq,
            failed: None,
            paused: None,
        }
    }

    /// Puts a batch that could not be written back in front of whatever
    /// was appended since it was taken, so it is retried in order.
    fn put_back(&mut self, mut older: Pending) {
        // Its chunks are readable from `segments` again (and unshared).
        self.in_flight.clear();
        older.defs.append(&mut self.defs);
        self.defs = older.defs;
        older.segments.append(&mut self.segments);
        self.segments = older.segments;
        for (segment, newer) in mem::take(&mut self.acks) {
            let chunk = older.acks.entry(segment).or_default();
            chunk.create |= newer.create;
            chunk.bytes.extend_from_slice(&newer.bytes);
        }
        self.acks = older.acks;
        older.delete.append(&mut self.delete);
        self.delete = older.delete;
        self.copies |= older.copies;
    }
}

/// `Shared::state`: writing normally.
const STATE_OK: u8 = 0;
/// `Shared::state`: the disk is full; see `Pending::paused`.
const STATE_PAUSED: u8 = 1;
/// `Shared::state`: failed for good; see `Pending::failed`.
const STATE_FAILED: u8 = 2;

/// State shared by the store (appending) and the syncer (draining).
#[derive(Default)]
pub(crate) struct Shared {
    /// The only lock on the append path; held for a memcpy.
    pub pending: Mutex<Pending>,
    /// Mirrors `Pending::failed` / `Pending::paused` (`STATE_*`) so calls
    /// can check it without taking the lock.
    pub state: AtomicU8,
}

impl Shared {
    /// Err(Failed) once the store has failed; `Ok(true)` while it is
    /// paused on a full disk, `Ok(false)` normally.
    pub fn check(&self) -> Result<bool, PersistError> {
        match self.state.load(Ordering::Acquire) {
            STATE_OK => Ok(false),
            STATE_PAUSED => Ok(true),
            _ => {
                let reason = lock(&self.pending).failed.clone().unwrap_or_default();
                Err(PersistError::Failed(reason))
            }
        }
    }
}

/// Name of the reserve file in the data folder (see `StoreConfig::reserve_bytes`).
pub const RESERVE_FILE: &str = "reserve";

/// True for the errors that mean "no space": ENOSPC and EDQUOT. These pause
/// the store; every other error fails it for good.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// What a failed write did.
enum WriteError {
    /// The disk is full; every file was put back as it was before the batch.
    Full(String),
    /// Any other error: the store must fail.
    Fatal(String),
}

/// A file's state before the batch touched it: its length, or `None` if the
/// batch created it.
type Undo = Vec<(String, Option<u64>)>;

/// The syncer's own state, guarded by the sync lock.
struct SyncState {
    /// Highest durable seq.
    durable: Seq,
    /// The reserve file exists (it is spent on the first full disk).
    reserve: bool,
}

/// Writes and syncs what [`crate::FileStore`] buffered. Share it in an `Arc`;
/// concurrent `sync` calls are serialised, and a caller that waited for
/// another's sync usually finds its records already durable.
pub struct FileSyncer {
    /// The buffer filled by the store.
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    /// Held for a whole sync, which serialises syncs.
    state: Mutex<SyncState>,
    /// Size of the reserve file; 0 = none.
    reserve_bytes: u64,
    /// Appends and syncs since open, with their bytes and time (the
    /// server's free-disk check accounts the bytes between two free-space
    /// readings; the metrics show them all).
    io: IoStats,
}

impl FileSyncer {
    /// `reserve` tells whether the reserve file could be created at open;
    /// when it could not, the store starts paused.
    pub(crate) fn new(
        shared: Arc<Shared>,
        backend: Arc<dyn Backend>,
        reserve_bytes: u64,
        reserve: bool,
    ) -> Self {
        if reserve_bytes > 0 && !reserve {
            lock(&shared.pending).paused = Some("no space for the store's reserve".into());
            shared.state.store(STATE_PAUSED, Ordering::Release);
        }
        Self {
            shared,
            backend,
            state: Mutex::new(SyncState {
                durable: 0,
                reserve,
            }),
            reserve_bytes,
            io: IoStats::default(),
        }
    }

    /// Highest seq known durable, without syncing.
    pub fn durable_seq(&self) -> Seq {
        lock(&self.state).durable
    }

    /// Bytes appended to the data folder's files since open.
    pub fn written_bytes(&self) -> u64 {
        self.io.write_bytes()
    }

    /// The I/O counters (appends, bytes, syncs and their time) since open.
    pub fn io(&self) -> IoSnapshot {
        self.io.snapshot()
    }

    /// Why the store is paused (the disk is full), if it is.
    pub fn paused(&self) -> Option<String> {
        if self.shared.state.load(Ordering::Acquire) != STATE_PAUSED {
            return None;
        }
        lock(&self.shared.pending).paused.clone()
    }

    /// True once the store has failed for good.
    pub fn failed(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == STATE_FAILED
    }

    fn append(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let started = Instant::now();
        self.backend.append(name, data)?;
        self.io.wrote(data.len(), started);
        Ok(())
    }

    /// fdatasyncs `name`, counted.
    fn sync_file(&self, name: &str) -> std::io::Result<()> {
        let started = Instant::now();
        self.backend.sync(name)?;
        self.io.synced(started);
        Ok(())
    }

    /// fsyncs the folder, counted.
    fn sync_dir(&self) -> std::io::Result<()> {
        let started = Instant::now();
        self.backend.sync_dir()?;
        self.io.synced(started);
        Ok(())
    }

    /// Notes `name`'s state before this batch first touches it.
    fn note(&self, undo: &mut Undo, name: &str, creating: bool) -> std::io::Result<()> {
        if undo.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        let before = if creating {
            None
        } else {
            Some(self.backend.len(name)?)
        };
        undo.push((name.to_string(), before));
        Ok(())
    }

    /// Appends and syncs one batch's records. Order matters for crash
    /// safety: data is made durable before any directory change that
    /// depends on it.
    fn write_data(&self, batch: &Pending, undo: &mut Undo) -> std::io::Result<()> {
        let b = self.backend.as_ref();
        let mut dir_dirty = false;
        if !batch.defs.is_empty() {
            self.note(undo, format::DEFS_FILE, false)?;
            self.append(format::DEFS_FILE, &batch.defs)?;
            self.sync_file(format::DEFS_FILE)?;
        }
        for (i, chunk) in batch.segments.iter().enumerate() {
            let name = format::segment_file(chunk.segment);
            self.note(undo, &name, chunk.create_with_base.is_some())?;
            if let Some(base) = chunk.create_with_base {
                b.create(&name)?;
                self.append(&name, &format::encode_header(format::MAGIC_SEGMENT, base))?;
                dir_dirty = true;
            }
            self.append(&name, &chunk.bytes)?;
            let last_of_segment = batch
                .segments
                .get(i + 1)
                .is_none_or(|c| c.segment != chunk.segment);
            if last_of_segment {
                self.sync_file(&name)?;
            }
        }
        for (segment, chunk) in &batch.acks {
            let name = format::acks_file(*segment);
            self.note(undo, &name, chunk.create)?;
            if chunk.create {
                b.create(&name)?;
                self.append(
                    &name,
                    &format::encode_header(format::MAGIC_ACKS, u64::from(*segment)),
                )?;
                dir_dirty = true;
            }
            self.append(&name, &chunk.bytes)?;
            self.sync_file(&name)?;
        }
        if dir_dirty {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Deletes settled segments: every `msgs.N` durably before any `acks.N`,
    /// so releases never vanish while the messages they release still
    /// exist. A file already gone counts as deleted.
    fn delete_settled(&self, delete: &[(u32, bool)]) -> std::io::Result<()> {
        if delete.is_empty() {
            return Ok(());
        }
        let b = self.backend.as_ref();
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        for (segment, _) in delete {
            gone(b.remove(&format::segment_file(*segment)))?;
        }
        self.sync_dir()?;
        let mut removed_acks = false;
        for (segment, has_acks) in delete {
            if *has_acks {
                gone(b.remove(&format::acks_file(*segment)))?;
                removed_acks = true;
            }
        }
        if removed_acks {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Puts every file the failed batch touched back as it was (cutting
    /// partial tails, removing files it created), then checks the lengths
    /// on disk are what they were before.
    fn rollback(&self, undo: &Undo) -> std::io::Result<()> {
        let b = self.backend.as_ref();
        let mut removed = false;
        for (name, before) in undo.iter().rev() {
            match before {
                Some(len) => {
                    b.truncate(name, *len)?;
                    self.sync_file(name)?;
                }
                None => match b.remove(name) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    r => {
                        r?;
                        removed = true;
                    }
                },
            }
        }
        if removed {
            self.sync_dir()?;
        }
        for (name, before) in undo {
            if let Some(len) = before {
                let now = b.len(name)?;
                if now != *len {
                    return Err(std::io::Error::other(format!(
                        "{name} is {now} bytes after rollback, expected {len}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes one batch's data and then deletes its settled segments. A full
    /// disk while writing data is rolled back; anything else is fatal.
    fn write(&self, batch: &Pending) -> Result<(), WriteError> {
        let mut undo = Undo::new();
        if let Err(e) = self.write_data(batch, &mut undo) {
            if !is_disk_full(&e) {
                return Err(WriteError::Fatal(e.to_string()));
            }
            return match self.rollback(&undo) {
                Ok(()) => Err(WriteError::Full(e.to_string())),
                Err(r) => Err(WriteError::Fatal(format!(
                    "{e}; then rolling back the partial batch failed: {r}"
                ))),
            };
        }
        self.delete_settled(&batch.delete)
            .map_err(|e| WriteError::Fatal(e.to_string()))
    }

    /// The batch taken last is in its files for good: its chunks are no
    /// longer needed for reads.
    fn written(&self) {
        lock(&self.shared.pending).in_flight.clear();
    }

    /// Marks the store failed for good.
    fn fail(&self, msg: String) -> PersistError {
        tracing::error!("store failed, refusing further writes: {msg}");
        lock(&self.shared.pending).failed = Some(msg.clone());
        self.shared.state.store(STATE_FAILED, Ordering::Release);
        PersistError::Io(msg)
    }

    /// Enters (or stays in) the paused state, putting `batch` back if it
    /// was not written.
    fn pause(&self, reason: &str, batch: Option<Pending>) {
        let mut p = lock(&self.shared.pending);
        if let Some(batch) = batch {
            p.put_back(batch);
        }
        if p.paused.is_none() {
            tracing::warn!(
                "disk full ({reason}): store paused; new persistent messages are refused \
                 until space returns"
            );
        }
        p.paused = Some(format!("disk full: {reason}"));
        self.shared.state.store(STATE_PAUSED, Ordering::Release);
    }

    /// One sync while paused: deletions first — which is how a purge or a
    /// draining consumer frees the space — unless a waiting message record
    /// is a copy whose original a settled segment may still hold (none is
    /// appended while paused, so only a batch that failed before the pause
    /// can hold message records, e.g. one larger than the reserve); then the
    /// buffered records, then the reserve is re-created; only then does the
    /// store resume. Deleting a settled segment before the releases that
    /// settled it are durable is safe otherwise: a crash then loses only
    /// releases of messages that are gone anyway. A settled segment that
    /// the batch still writes records to is deleted after it, as usual.
    fn retry(&self, st: &mut SyncState, mut batch: Pending) -> Result<Seq, PersistError> {
        if !batch.copies && !batch.delete.is_empty() {
            // A segment this batch still writes records to goes after them.
            let (early, later): (Vec<_>, Vec<_>) = mem::take(&mut batch.delete)
                .into_iter()
                .partition(|(s, _)| !batch.segments.iter().any(|c| c.segment == *s));
            batch.delete = later;
            if let Err(e) = self.delete_settled(&early) {
                return Err(self.fail(e.to_string()));
            }
            for (segment, _) in early {
                batch.acks.remove(&segment);
            }
        }
        match self.write(&batch) {
            Ok(()) => {
                self.written();
                st.durable = batch.last_seq;
            }
            Err(WriteError::Full(e)) => {
                self.pause(&e, Some(batch));
                return Err(PersistError::Io(format!("store paused, disk full: {e}")));
            }
            Err(WriteError::Fatal(e)) => return Err(self.fail(e)),
        }
        if !st.reserve && self.reserve_bytes > 0 {
            match self.backend.reserve(RESERVE_FILE, self.reserve_bytes) {
                Ok(()) => st.reserve = true,
                Err(e) if is_disk_full(&e) => return Ok(st.durable),
                Err(e) => return Err(self.fail(format!("creating the reserve: {e}"))),
            }
        }
        let mut p = lock(&self.shared.pending);
        if p.paused.take().is_some() {
            tracing::info!("disk space is back: store resumed");
        }
        self.shared.state.store(STATE_OK, Ordering::Release);
        Ok(st.durable)
    }
}

impl Syncer for FileSyncer {
    fn sync(&self) -> Result<Seq, PersistError> {
        let mut st = lock(&self.state);
        let (batch, paused) = {
            let mut p = lock(&self.shared.pending);
            if let Some(e) = &p.failed {
                return Err(PersistError::Failed(e.clone()));
            }
            (p.take(), p.paused.is_some())
        };
        if paused {
            return self.retry(&mut st, batch);
        }
        match self.write(&batch) {
            Ok(()) => {
                self.written();
                st.durable = batch.last_seq;
                Ok(batch.last_seq)
            }
            Err(WriteError::Fatal(e)) => Err(self.fail(e)),
            Err(WriteError::Full(e)) => {
                // Pause first: from here on no message is appended. Then
                // spend the reserve on everything buffered, so what was in
                // flight becomes durable and only releases and definitions
                // can wait for space.
                self.pause(&e, Some(batch));
                if !st.reserve {
                    return Err(PersistError::Io(format!("store paused, disk full: {e}")));
                }
                st.reserve = false;
                if let Err(r) = self.backend.remove(RESERVE_FILE) {
                    return Err(self.fail(format!("removing the reserve: {r}")));
                }
                let batch = lock(&self.shared.pending).take();
                match self.write(&batch) {
                    Ok(()) => {
                        self.written();
                        st.durable = batch.last_seq;
                        Ok(batch.last_seq)
                    }
                    Err(WriteError::Fatal(f)) => Err(self.fail(f)),
                    Err(WriteError::Full(e)) => {
                        self.pause(&e, Some(batch));
                        Err(PersistError::Io(format!("store paused, disk full: {e}")))
                    }
                }
            }
        }
    }
}
