//! The buffered half: [`FileStore`] implements `Persistence`. Called under the
//! broker's state lock, so it never does I/O: it encodes a record into its own
//! scratch buffer and copies it into the shared pending buffer.

use std::collections::HashMap;
use std::sync::Arc;

use broker_core::persist::{
    Appended, BindingDef, ExchangeDef, MessageId, MessageRecord, PersistError, Persistence,
    QueueDef, Seq, StoredAt,
};

use crate::backend::Backend;
use crate::reads::Reads;

use crate::format::{self, HEADER_SIZE_BYTES};
use crate::index::{Index, Slot};
use crate::record::{self, QueueId};
use crate::recovery::Recovery;
use crate::syncer::{AcksChunk, Pending, SegmentChunk, Shared};
use crate::{lock, StoreConfig};

/// The refusal of a new message while the store is paused (not sticky: the
/// core nacks the publish, and the store resumes when space returns).
fn paused_error(reason: &str) -> PersistError {
    PersistError::Io(format!(
        "store paused ({reason}); persistent messages are refused until space returns"
    ))
}

/// Buffered write side of the store. See the module docs.
pub struct FileStore {
    /// The pending buffer, shared with the syncer.
    shared: Arc<Shared>,
    config: StoreConfig,
    /// Records are encoded here outside the shared lock, then copied in.
    scratch: Vec<u8>,
    /// Seq of the last record appended.
    seq: Seq,
    next_message_id: MessageId,
    next_queue_id: QueueId,
    /// vhost -> queue name -> id, for durable queues only.
    queue_ids: HashMap<String, HashMap<String, QueueId>>,
    /// Which segment holds each live message, and which queues hold it.
    index: Index,
    /// Per-message scratch: the holding queues' ids and slots.
    qids: Vec<QueueId>,
    slots: Vec<Slot>,
    /// Segment receiving new messages.
    current: u32,
    /// Bytes in the current segment, header included.
    current_bytes: u64,
    /// The current segment's file is created (or its creation is pending).
    current_created: bool,
    /// Settled segments found while handling one call, handed to the syncer
    /// with that call's record.
    to_delete: Vec<(u32, bool)>,
    /// A message was appended since the last `maintain`.
    appended_since_maintain: bool,
    /// The data folder, for reading message records back.
    backend: Arc<dyn Backend>,
    /// Where the last `append_for` wrote its record (`None`: nothing).
    last_at: Option<StoredAt>,
    /// The record `append_for` writes is a copy (`append_copy`).
    appending_copy: bool,
    /// Segment mappings and the copy buffer behind `read_message`.
    reads: Reads,
}

/// How many distinct names `queues` holds (usually 1 or 2: quadratic is fine).
fn distinct_count(queues: &[&str]) -> usize {
    queues
        .iter()
        .enumerate()
        .filter(|(i, q)| !queues[..*i].contains(q))
        .count()
}

impl FileStore {
    pub(crate) fn new(
        shared: Arc<Shared>,
        backend: Arc<dyn Backend>,
        config: StoreConfig,
        rec: Recovery,
    ) -> Self {
        let mut queue_ids: HashMap<String, HashMap<String, QueueId>> = HashMap::new();
        for (id, q) in &rec.defs.queues {
            queue_ids
                .entry(q.vhost.clone())
                .or_default()
                .insert(q.name.clone(), *id);
        }
        Self {
            shared,
            config,
            scratch: Vec::new(),
            seq: 0,
            next_message_id: rec.defs.next_message_id.max(1),
            next_queue_id: rec.defs.next_queue_id.max(1),
            queue_ids,
            index: rec.index,
            qids: Vec::new(),
            slots: Vec::new(),
            current: rec.next_segment,
            current_bytes: 0,
            current_created: false,
            to_delete: Vec::new(),
            appended_since_maintain: false,
            backend,
            last_at: None,
            appending_copy: false,
            reads: Reads::default(),
        }
    }

    fn queue_id(&self, vhost: &str, name: &str) -> Option<QueueId> {
        self.queue_ids.get(vhost)?.get(name).copied()
    }

    /// Copies the scratch record into the pending buffer via `place`, with a
    /// new seq and any settled segments to delete. The only locked section.
    /// A `message` record is refused while the store is paused.
    fn push(
        &mut self,
        message: bool,
        place: impl FnOnce(&mut Pending, &[u8]),
    ) -> Result<Seq, PersistError> {
        let mut p = lock(&self.shared.pending);
        if let Some(e) = &p.failed {
            return Err(PersistError::Failed(e.clone()));
        }
        if message {
            if let Some(reason) = &p.paused {
                return Err(paused_error(reason));
            }
        }
        self.seq += 1;
        p.last_seq = self.seq;
        place(&mut p, &self.scratch);
        p.delete.append(&mut self.to_delete);
        Ok(self.seq)
    }

    fn push_def(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<Seq, PersistError> {
        self.scratch.clear();
        format::append_frame(&mut self.scratch, encode);
        self.push(false, |p, rec| p.defs.extend_from_slice(rec))
    }

    /// Schedules segment `num` for deletion if nothing in it is live and
    /// it is no longer appended to.
    fn maybe_delete(&mut self, num: u32) {
        if num == self.current {
            return;
        }
        if let Some(seg) = self.index.segment(num).filter(|s| s.live == 0) {
            self.to_delete.push((num, seg.has_acks));
            self.index.remove_segment(num);
            // Nothing can read it any more; unmapping lets its space go.
            self.reads.forget(num);
        }
    }

    /// Closes the current segment and starts a new one.
    fn rotate(&mut self) {
        let old = self.current;
        self.current = old.saturating_add(1);
        self.current_bytes = 0;
        self.current_created = false;
        self.index.seal(old);
        self.maybe_delete(old);
    }
}

impl Persistence for FileStore {
    fn put_access(
        &mut self,
        rec: &broker_core::access_state::AccessRecord,
    ) -> Result<Seq, PersistError> {
        self.shared.check()?;
        self.push_def(|o| crate::access_record::encode_access(o, rec))
    }

    fn put_exchange(&mut self, def: &ExchangeDef) -> Result<Seq, PersistError> {
        self.shared.check()?;
        self.push_def(|o| record::encode_exchange(o, def))
    }

    fn delete_exchange(&mut self, vhost: &str, name: &str) -> Result<Seq, PersistError> {
        self.shared.check()?;
        self.push_def(|o| record::encode_delete_exchange(o, vhost, name))
    }

    fn put_queue(&mut self, def: &QueueDef) -> Result<Seq, PersistError> {
        self.shared.check()?;
        let id = match self.queue_id(&def.vhost, &def.name) {
            Some(id) => id,
            None => {
                let id = self.next_queue_id;
                self.next_queue_id += 1;
                id
            }
        };
        let seq = self.push_def(|o| record::encode_queue(o, id, def))?;
        self.queue_ids
            .entry(def.vhost.clone())
            .or_default()
            .insert(def.name.clone(), id);
        self.index.slot(id);
        Ok(seq)
    }

    fn delete_queue(&mut self, vhost: &str, name: &str) -> Result<Seq, PersistError> {
        self.shared.check()?;
        let Some(id) = self.queue_id(vhost, name) else {
            // Never durable (or already deleted): nothing on disk to undo.
            return Ok(self.seq);
        };
        if let Some(names) = self.queue_ids.get_mut(vhost) {
            names.remove(name);
        }
        // The delete record itself releases every hold: no per-message records.
        if let Some(slot) = self.index.slot_of(id) {
            for num in self.index.release_all(slot) {
                self.maybe_delete(num);
            }
            self.index.forget(id);
        }
        self.push_def(|o| record::encode_delete_queue(o, id))
    }

    fn put_binding(&mut self, def: &BindingDef) -> Result<Seq, PersistError> {
        self.shared.check()?;
        self.push_def(|o| record::encode_binding(o, def, false))
    }

    fn delete_binding(&mut self, def: &BindingDef) -> Result<Seq, PersistError> {
        self.shared.check()?;
        self.push_def(|o| record::encode_binding(o, def, true))
    }

    fn append_message(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
    ) -> Result<(MessageId, Seq), PersistError> {
        if self.shared.check()? {
            return Err(paused_error("disk full"));
        }
        let mut qids = std::mem::take(&mut self.qids);
        qids.clear();
        qids.extend(queues.iter().filter_map(|q| self.queue_id(vhost, q)));
        qids.sort_unstable();
        qids.dedup();
        let result = self.append_for(msg, &qids, None);
        self.qids = qids;
        result
    }

    fn append_timed_message(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: u64,
    ) -> Result<(MessageId, Seq), PersistError> {
        if self.shared.check()? {
            return Err(paused_error("disk full"));
        }
        let mut qids = std::mem::take(&mut self.qids);
        qids.clear();
        qids.extend(queues.iter().filter_map(|q| self.queue_id(vhost, q)));
        qids.sort_unstable();
        qids.dedup();
        let result = self.append_for(msg, &qids, Some(due_ms));
        self.qids = qids;
        result
    }

    fn append(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: Option<u64>,
    ) -> Result<Appended, PersistError> {
        self.last_at = None;
        let (id, seq) = match due_ms {
            Some(due) => self.append_timed_message(vhost, msg, queues, due)?,
            None => self.append_message(vhost, msg, queues)?,
        };
        // Readable for as long as it lives only if the store holds it for
        // every queue named (each distinct name a durable queue it knows).
        let all_held = self.qids.len() == queues.len() || self.qids.len() == distinct_count(queues);
        let at = self.last_at.take().filter(|_| all_held);
        Ok(Appended { id, seq, at })
    }

    fn refuses_messages(&self) -> bool {
        !matches!(self.shared.check(), Ok(false))
    }

    fn append_copy(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: Option<u64>,
    ) -> Result<Appended, PersistError> {
        self.appending_copy = true;
        let r = self.append(vhost, msg, queues, due_ms);
        self.appending_copy = false;
        r
    }

    fn read_message(&mut self, at: StoredAt) -> Option<MessageRecord<'_>> {
        self.reads.read(&self.shared, self.backend.as_ref(), at)
    }

    fn remove_message(
        &mut self,
        vhost: &str,
        queue: &str,
        id: MessageId,
    ) -> Result<Seq, PersistError> {
        self.shared.check()?;
        let Some(qid) = self.queue_id(vhost, queue) else {
            return Ok(self.seq);
        };
        let Some(slot) = self.index.slot_of(qid) else {
            return Ok(self.seq);
        };
        let Some(released) = self.index.release(slot, id) else {
            // Not a durable hold (transient message or already released).
            return Ok(self.seq);
        };
        let segment = released.segment;
        let create = match self.index.segment_mut(segment) {
            Some(s) => !std::mem::replace(&mut s.has_acks, true),
            None => false,
        };
        if released.segment_live == 0 {
            self.maybe_delete(segment);
        }
        self.scratch.clear();
        format::append_frame(&mut self.scratch, |o| record::encode_release(o, qid, id));
        self.push(false, |p, rec| {
            let chunk = p.acks.entry(segment).or_insert_with(AcksChunk::default);
            chunk.create |= create;
            chunk.bytes.extend_from_slice(rec);
        })
    }

    fn last_seq(&self) -> Seq {
        self.seq
    }

    /// Called by the broker's tick: an active segment whose messages are
    /// all settled and that took no new message since the previous tick is
    /// closed, so the next sync deletes it (a purged or drained queue gives
    /// its space back within a tick or two, not at the next rotation).
    fn maintain(&mut self) {
        let appended = std::mem::take(&mut self.appended_since_maintain);
        if appended || !self.current_created || self.shared.check().is_err() {
            return;
        }
        let empty = self.index.segment(self.current).is_none_or(|s| s.live == 0);
        if !empty {
            return;
        }
        self.rotate();
        if !self.to_delete.is_empty() {
            // An empty batch carries the deletion to the syncer.
            let _ = self.push(false, |_, _| {});
        }
    }
}

impl FileStore {
    /// Appends `msg` held by `qids` (sorted, distinct durable queue ids),
    /// as a timed message record when it has a due time.
    fn append_for(
        &mut self,
        msg: &MessageRecord<'_>,
        qids: &[QueueId],
        due_ms: Option<u64>,
    ) -> Result<(MessageId, Seq), PersistError> {
        let id = self.next_message_id;
        if qids.is_empty() {
            // No durable queue holds it: nothing to persist, but ids stay unique.
            self.next_message_id += 1;
            return Ok((id, self.seq));
        }
        self.scratch.clear();
        format::append_frame(&mut self.scratch, |o| {
            record::encode_message(o, id, qids, msg, due_ms)
        });
        let len = self.scratch.len() as u64;
        if len > self.config.record_size_max_bytes {
            // Not an I/O failure: refuse this message only, the store stays usable.
            return Err(PersistError::Io(format!(
                "message record of {len} bytes exceeds record_size_max_bytes {}",
                self.config.record_size_max_bytes
            )));
        }
        self.next_message_id += 1;
        if self.current_created
            && (self.current_bytes + len > self.config.segment_size_bytes
                || !self.index.fits(self.current, id))
        {
            self.rotate();
        }
        let (segment, create) = (self.current, !self.current_created);
        let offset = if create {
            HEADER_SIZE_BYTES as u64
        } else {
            self.current_bytes
        };
        let copy = self.appending_copy;
        let seq = self.push(true, |p, rec| {
            p.copies |= copy;
            let last = p
                .segments
                .last_mut()
                .filter(|c| c.segment == segment && !create)
                .and_then(Arc::get_mut);
            match last {
                Some(chunk) => chunk.bytes.extend_from_slice(rec),
                None => p.segments.push(Arc::new(SegmentChunk {
                    segment,
                    base_offset: offset,
                    create_with_base: create.then_some(id),
                    bytes: rec.to_vec(),
                })),
            }
        })?;
        if create {
            self.current_created = true;
            self.current_bytes = HEADER_SIZE_BYTES as u64;
        }
        self.current_bytes += len;
        self.appended_since_maintain = true;
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        slots.extend(qids.iter().map(|q| self.index.slot(*q)));
        self.index.push(segment, id, &slots, false);
        self.slots = slots;
        self.last_at = u32::try_from(offset)
            .ok()
            .map(|offset| StoredAt { segment, offset });
        Ok((id, seq))
    }
}
