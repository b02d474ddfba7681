//! The buffered half: [`FileStore`] implements `Persistence`. Called under the
//! broker's state lock, so it never does I/O: it encodes a record into its own
//! scratch buffer and copies it into the shared pending buffer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use broker_core::persist::{
    BindingDef, ExchangeDef, MessageId, MessageRecord, PersistError, Persistence, QueueDef, Seq,
};

use crate::format::{self, HEADER_SIZE_BYTES};
use crate::record::{self, QueueId};
use crate::recovery::Recovery;
use crate::syncer::{AcksChunk, Pending, SegmentChunk, Shared};
use crate::{lock, StoreConfig};

/// Where a live message is and how many queues still hold it.
struct Held {
    segment: u32,
    holds: u32,
}

/// Bookkeeping for a segment that still has live messages (or is current).
struct SegmentState {
    /// Messages in it still held by at least one queue.
    live: u64,
    /// Its acks file exists (or is pending creation).
    has_acks: bool,
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
    /// Message ids each queue holds, so deleting a queue releases them.
    queue_holds: HashMap<QueueId, BTreeSet<MessageId>>,
    messages: HashMap<MessageId, Held>,
    segments: BTreeMap<u32, SegmentState>,
    /// Segment receiving new messages.
    current: u32,
    /// Bytes in the current segment, header included.
    current_bytes: u64,
    /// The current segment's file is created (or its creation is pending).
    current_created: bool,
    /// Settled segments found while handling one call, handed to the syncer
    /// with that call's record.
    to_delete: Vec<(u32, bool)>,
}

impl FileStore {
    pub(crate) fn new(shared: Arc<Shared>, config: StoreConfig, rec: Recovery) -> Self {
        let mut s = Self {
            shared,
            config,
            scratch: Vec::new(),
            seq: 0,
            next_message_id: rec.defs.next_message_id.max(1),
            next_queue_id: rec.defs.next_queue_id.max(1),
            queue_ids: HashMap::new(),
            queue_holds: HashMap::new(),
            // Sized up front: recovery of millions of messages otherwise
            // rehashes the table again and again.
            messages: HashMap::with_capacity(rec.live.len()),
            segments: BTreeMap::new(),
            current: rec.next_segment,
            current_bytes: 0,
            current_created: false,
            to_delete: Vec::new(),
        };
        for (id, q) in &rec.defs.queues {
            s.queue_ids
                .entry(q.vhost.clone())
                .or_default()
                .insert(q.name.clone(), *id);
            s.queue_holds.insert(*id, BTreeSet::new());
        }
        // Per-queue id lists are collected in id order and bulk-built into
        // the sets afterwards (linear), instead of one tree insert each.
        let mut holds: HashMap<QueueId, Vec<MessageId>> = HashMap::new();
        for (id, m) in &rec.live {
            for q in &m.queues {
                holds.entry(*q).or_default().push(*id);
            }
            s.messages.insert(
                *id,
                Held {
                    segment: m.segment,
                    holds: m.queues.len() as u32,
                },
            );
            let has_acks = rec.segments.get(&m.segment).copied().unwrap_or(false);
            s.segments
                .entry(m.segment)
                .or_insert(SegmentState { live: 0, has_acks })
                .live += 1;
        }
        for (q, ids) in holds {
            let set = s.queue_holds.entry(q).or_default();
            if set.is_empty() {
                // `collect` into a BTreeSet bulk-builds from sorted input.
                *set = ids.into_iter().collect();
            } else {
                set.extend(ids);
            }
        }
        s
    }

    fn queue_id(&self, vhost: &str, name: &str) -> Option<QueueId> {
        self.queue_ids.get(vhost)?.get(name).copied()
    }

    /// Copies the scratch record into the pending buffer via `place`, with a
    /// new seq and any settled segments to delete. The only locked section.
    fn push(&mut self, place: impl FnOnce(&mut Pending, &[u8])) -> Result<Seq, PersistError> {
        let mut p = lock(&self.shared.pending);
        if let Some(e) = &p.failed {
            return Err(PersistError::Failed(e.clone()));
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
        self.push(|p, rec| p.defs.extend_from_slice(rec))
    }

    /// Drops one hold on `id`; a segment whose last live message this was is
    /// scheduled for deletion unless it is still being appended to.
    fn release_hold(&mut self, id: MessageId) {
        let Some(held) = self.messages.get_mut(&id) else {
            return;
        };
        held.holds = held.holds.saturating_sub(1);
        if held.holds > 0 {
            return;
        }
        let segment = held.segment;
        self.messages.remove(&id);
        if let Some(s) = self.segments.get_mut(&segment) {
            s.live = s.live.saturating_sub(1);
            if s.live == 0 && segment != self.current {
                self.to_delete.push((segment, s.has_acks));
                self.segments.remove(&segment);
            }
        }
    }

    /// Closes the current segment and starts a new one.
    fn rotate(&mut self) {
        let old = self.current;
        if let Some(s) = self.segments.get(&old) {
            if s.live == 0 {
                self.to_delete.push((old, s.has_acks));
                self.segments.remove(&old);
            }
        }
        self.current = old.saturating_add(1);
        self.current_bytes = 0;
        self.current_created = false;
    }
}

impl Persistence for FileStore {
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
        self.queue_holds.entry(id).or_default();
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
        for msg in self.queue_holds.remove(&id).unwrap_or_default() {
            self.release_hold(msg);
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
        msg: &MessageRecord,
        queues: &[&str],
    ) -> Result<(MessageId, Seq), PersistError> {
        self.shared.check()?;
        let mut qids: Vec<QueueId> = queues
            .iter()
            .filter_map(|q| self.queue_id(vhost, q))
            .collect();
        qids.sort_unstable();
        qids.dedup();
        let id = self.next_message_id;
        if qids.is_empty() {
            // No durable queue holds it: nothing to persist, but ids stay unique.
            self.next_message_id += 1;
            return Ok((id, self.seq));
        }
        self.scratch.clear();
        format::append_frame(&mut self.scratch, |o| {
            record::encode_message(o, id, &qids, msg)
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
        if self.current_created && self.current_bytes + len > self.config.segment_size_bytes {
            self.rotate();
        }
        let (segment, create) = (self.current, !self.current_created);
        let seq = self.push(|p, rec| match p.segments.last_mut() {
            Some(chunk) if chunk.segment == segment && !create => {
                chunk.bytes.extend_from_slice(rec)
            }
            _ => p.segments.push(SegmentChunk {
                segment,
                create_with_base: create.then_some(id),
                bytes: rec.to_vec(),
            }),
        })?;
        if create {
            self.current_created = true;
            self.current_bytes = HEADER_SIZE_BYTES as u64;
        }
        self.current_bytes += len;
        for q in &qids {
            self.queue_holds.entry(*q).or_default().insert(id);
        }
        self.messages.insert(
            id,
            Held {
                segment,
                holds: qids.len() as u32,
            },
        );
        self.segments
            .entry(segment)
            .or_insert(SegmentState {
                live: 0,
                has_acks: false,
            })
            .live += 1;
        Ok((id, seq))
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
        let held_here = self
            .queue_holds
            .get_mut(&qid)
            .is_some_and(|ids| ids.remove(&id));
        let Some(segment) = self
            .messages
            .get(&id)
            .map(|h| h.segment)
            .filter(|_| held_here)
        else {
            // Not a durable hold (transient message or already released).
            return Ok(self.seq);
        };
        let create = match self.segments.get_mut(&segment) {
            Some(s) => !std::mem::replace(&mut s.has_acks, true),
            None => false,
        };
        self.release_hold(id);
        self.scratch.clear();
        format::append_frame(&mut self.scratch, |o| record::encode_release(o, qid, id));
        self.push(|p, rec| {
            let chunk = p.acks.entry(segment).or_insert_with(AcksChunk::default);
            chunk.create |= create;
            chunk.bytes.extend_from_slice(rec);
        })
    }

    fn last_seq(&self) -> Seq {
        self.seq
    }
}
