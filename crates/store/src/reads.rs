//! Reading message records back: a persistent message's segment record is
//! the one copy deliveries read (`Persistence::read_message`; the broker's
//! arena keeps only a stub, see `docs/storage.md`).
//!
//! Every message record is in exactly one of three places (see
//! `Pending::in_flight`): the pending buffer, the batch the syncer is
//! writing, or its segment file for good. Bytes of a file below the first
//! buffered or in-flight chunk of that segment were written by a batch that
//! succeeded, and nothing ever changes or cuts them while the segment
//! lives (a rollback only cuts what its own batch appended; recovery runs
//! before the store exists). Those are read through a read-only mapping
//! without any lock; anything else is copied out of its chunk under the
//! pending lock (a memcpy, as on the append path).

use broker_core::persist::{MessageRecord, StoredAt};

use crate::backend::{Backend, Mapped};
use crate::syncer::Shared;
use crate::{format, lock, record};

/// Segment mappings kept for reads. Consumers mostly read one or two
/// segments (the oldest unacked and the newest); a mapping costs only
/// address space, but each keeps a deleted segment's disk space until it
/// goes, so settled segments are unmapped at once (`Reads::forget`).
const READ_MAPS_MAX: usize = 8;

/// One segment file mapped for reads.
struct SegmentMap {
    /// Its segment number.
    segment: u32,
    /// The mapping (of the file as long as it was when mapped).
    map: Mapped,
    /// Bytes known written for good: reads never go past this.
    safe_len: usize,
}

impl SegmentMap {
    /// The frame body at `offset`, if it lies wholly below `safe_len`.
    fn frame(&self, offset: usize) -> Option<&[u8]> {
        format::frame_body(self.map.get(..self.safe_len)?, offset)
    }
}

/// The read side of the store: mappings and the copy buffer.
#[derive(Default)]
pub(crate) struct Reads {
    /// Mapped segments, oldest mapping first (at most `READ_MAPS_MAX`).
    maps: Vec<SegmentMap>,
    /// A record copied out of the pending buffer (grows to the largest
    /// record read this way; bounded by `record_size_max_bytes`).
    copy: Vec<u8>,
}

impl Reads {
    /// Segment `segment` is settled (to be deleted): drop its mapping.
    pub fn forget(&mut self, segment: u32) {
        self.maps.retain(|m| m.segment != segment);
    }

    /// The message record at `at`, borrowed from a mapping or the copy
    /// buffer. `None` if no record is there (a bug, or a segment gone).
    pub fn read<'a>(
        &'a mut self,
        shared: &Shared,
        backend: &dyn Backend,
        at: StoredAt,
    ) -> Option<MessageRecord<'a>> {
        let offset = at.offset as usize;
        let mut hit = self
            .maps
            .iter()
            .position(|m| m.segment == at.segment && m.frame(offset).is_some());
        if hit.is_none() {
            let p = lock(&shared.pending);
            // Below the first chunk of this segment, the file is final.
            let mut final_below = u64::MAX;
            let want = u64::from(at.offset);
            for c in p.segments.iter().chain(p.in_flight.iter()) {
                if c.segment != at.segment {
                    continue;
                }
                let end = c.base_offset + c.bytes.len() as u64;
                if (c.base_offset..end).contains(&want) {
                    let start = usize::try_from(want - c.base_offset).ok()?;
                    let body = format::frame_body(&c.bytes, start)?;
                    self.copy.clear();
                    self.copy.extend_from_slice(body);
                    drop(p);
                    return record::decode_message(&self.copy).map(|v| v.msg);
                }
                final_below = final_below.min(c.base_offset);
            }
            // Mapped under the lock, so no batch of this segment can start
            // between reading the chunks and sizing the mapping.
            let map = backend
                .read_mapped(&format::segment_file(at.segment))
                .ok()?;
            drop(p);
            let safe_len = usize::try_from((map.len() as u64).min(final_below)).ok()?;
            map.will_need(offset, safe_len);
            self.forget(at.segment);
            if self.maps.len() >= READ_MAPS_MAX {
                self.maps.remove(0);
            }
            self.maps.push(SegmentMap {
                segment: at.segment,
                map,
                safe_len,
            });
            hit = Some(self.maps.len() - 1);
        }
        let body = self.maps.get(hit?)?.frame(offset)?;
        record::decode_message(body).map(|v| v.msg)
    }
}
