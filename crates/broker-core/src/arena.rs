//! Where message contents live while queued.
//!
//! Every routed message is written ONCE as a record into an append-only
//! arena of segments; queues hold only 8-byte [`Loc`]s. This keeps RAM per
//! queued message to an index entry and avoids any per-message allocation on
//! the hot path (the publish is one memcpy into the arena, the delivery one
//! memcpy out of it). The broker's arena is file-backed (in the store crate,
//! so the OS page cache, not the heap, holds cold messages); [`MemArena`] is
//! the in-memory implementation for `--in-memory` and tests.
//!
//! Record layout inside a segment (little endian, 8-byte aligned):
//! `published_ms u64 | expiration_ms u64 | store_id u64 | props_len u32 |
//!  body_len u32 | exchange_len u8 | routing_key_len u8 | persistent u8 | flags u8`
//! then exchange, routing key, properties, body. A message whose one copy
//! is the durable store's segment record (persistent, held only by queues
//! the store holds it for) gets a *stub* instead: the same header with
//! `flags` = [`FLAG_IN_STORE`], where `props_len` holds the store's segment
//! number and `exchange_len` the `priority` property, then the record's
//! `offset u32` in that segment, and no contents (40 bytes); [`full_view`]
//! reads the contents from the store. See docs/storage.md ("What is written where, once").

use crate::persist::{Persistence, StoredAt};

/// A record's location: segment number in the high 32 bits, byte offset
/// (a multiple of 8) in the low 32. Increases with append order, so it also
/// orders a queue's messages.
pub type Loc = u64;

/// Bytes of the fixed record header.
pub const RECORD_HEADER_BYTES: usize = 36;

/// `flags` bit: the record is a stub, the contents are in the store.
pub const FLAG_IN_STORE: u8 = 1;

/// Bytes of a stub record (header + the store offset).
pub const STUB_RECORD_BYTES: usize = 40;

/// Per-message facts kept with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// When it was published (on `message::now_ms`'s clock).
    pub published_ms: u64,
    /// Per-message TTL from the `expiration` property; `u64::MAX` = none.
    pub expiration_ms: u64,
    /// The durable store's id for it; 0 = not stored.
    pub store_id: u64,
    /// Published with delivery_mode 2.
    pub persistent: bool,
}

/// A borrowed view of one stored message. For a stub (`stored_at` is
/// `Some`) the contents are empty here: [`full_view`] fills them from the
/// store; the meta and `body_len` are always right.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// Per-message facts.
    pub meta: RecordMeta,
    /// Exchange it was published to.
    pub exchange: &'a str,
    /// Routing key it was published with.
    pub routing_key: &'a str,
    /// Content-header property bytes as published.
    pub properties: &'a [u8],
    /// The body.
    pub body: &'a [u8],
    /// Length of the body (also for a stub, whose `body` is empty).
    pub body_len: usize,
    /// Where the store keeps the contents, for a stub.
    pub stored_at: Option<StoredAt>,
    /// A stub's `priority` property (0 when absent), kept so priority
    /// lanes are placed without reading the store; 0 for a full record
    /// (read `properties`).
    pub stub_priority: u8,
}

/// What is appended.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Per-message facts.
    pub meta: RecordMeta,
    /// Exchange it was published to.
    pub exchange: &'a str,
    /// Routing key it was published with.
    pub routing_key: &'a str,
    /// Content-header property bytes as published.
    pub properties: &'a [u8],
    /// The body.
    pub body: &'a [u8],
    /// `Some` = the store's record is the copy deliveries read: only a
    /// stub is written (see the module docs).
    pub stored_at: Option<StoredAt>,
}

impl NewMessage<'_> {
    pub fn record_len(&self) -> usize {
        if self.stored_at.is_some() {
            return STUB_RECORD_BYTES;
        }
        let raw = RECORD_HEADER_BYTES
            + self.exchange.len()
            + self.routing_key.len()
            + self.properties.len()
            + self.body.len();
        (raw + 7) & !7
    }

    /// Encodes the record into `out` (exactly `record_len()` bytes).
    pub fn encode_into(&self, out: &mut [u8]) {
        let m = &self.meta;
        out[0..8].copy_from_slice(&m.published_ms.to_le_bytes());
        out[8..16].copy_from_slice(&m.expiration_ms.to_le_bytes());
        out[16..24].copy_from_slice(&m.store_id.to_le_bytes());
        out[28..32].copy_from_slice(&(self.body.len() as u32).to_le_bytes());
        out[34] = u8::from(m.persistent);
        if let Some(s) = self.stored_at {
            out[24..28].copy_from_slice(&s.segment.to_le_bytes());
            out[32] = amqp_codec::peek_priority(self.properties).unwrap_or(0);
            out[33] = 0;
            out[35] = FLAG_IN_STORE;
            out[36..40].copy_from_slice(&s.offset.to_le_bytes());
            return;
        }
        out[24..28].copy_from_slice(&(self.properties.len() as u32).to_le_bytes());
        out[32] = self.exchange.len() as u8;
        out[33] = self.routing_key.len() as u8;
        out[35] = 0;
        let mut at = RECORD_HEADER_BYTES;
        for part in [
            self.exchange.as_bytes(),
            self.routing_key.as_bytes(),
            self.properties,
            self.body,
        ] {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out[at..].fill(0);
    }
}

/// Decodes the record at the start of `buf` (written by `encode_into`).
/// Arena bytes are only ever written by this process, but decoding still
/// checks bounds so a bug cannot turn into out-of-bounds reads.
pub fn decode_record(buf: &[u8]) -> Option<MessageView<'_>> {
    let h = buf.get(..RECORD_HEADER_BYTES)?;
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap_or([0; 4])) as usize;
    let meta = RecordMeta {
        published_ms: u64_at(0),
        expiration_ms: u64_at(8),
        store_id: u64_at(16),
        persistent: h[34] != 0,
    };
    let (props_len, body_len, ex_len, rk_len) =
        (u32_at(24), u32_at(28), h[32] as usize, h[33] as usize);
    if h[35] & FLAG_IN_STORE != 0 {
        let offset = buf.get(RECORD_HEADER_BYTES..STUB_RECORD_BYTES)?;
        return Some(MessageView {
            meta,
            exchange: "",
            routing_key: "",
            properties: &[],
            body: &[],
            body_len,
            stored_at: Some(StoredAt {
                segment: u32_at(24) as u32,
                offset: u32::from_le_bytes(offset.try_into().unwrap_or([0; 4])),
            }),
            stub_priority: h[32],
        });
    }
    let mut at = RECORD_HEADER_BYTES;
    let mut take = |n: usize| {
        let s = buf.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let exchange = std::str::from_utf8(take(ex_len)?).ok()?;
    let routing_key = std::str::from_utf8(take(rk_len)?).ok()?;
    let properties = take(props_len)?;
    let body = take(body_len)?;
    Some(MessageView {
        meta,
        exchange,
        routing_key,
        properties,
        body,
        body_len,
        stored_at: None,
        stub_priority: 0,
    })
}

/// The message at `loc` with its contents: the arena record, or for a stub
/// the store's record (the one on-disk copy). `None` if either is missing.
/// The view borrows the store, so copy what is needed before calling it
/// again.
pub fn full_view<'a>(
    arena: &'a dyn Arena,
    persist: &'a mut dyn Persistence,
    loc: Loc,
) -> Option<MessageView<'a>> {
    let v = arena.get(loc)?;
    let Some(at) = v.stored_at else {
        return Some(v);
    };
    let r = persist.read_message(at)?;
    Some(MessageView {
        exchange: r.exchange,
        routing_key: r.routing_key,
        properties: r.properties,
        body: r.body,
        body_len: r.body.len(),
        ..v
    })
}

#[derive(Debug, thiserror::Error)]
#[error("message arena: {0}")]
pub struct ArenaError(pub String);

/// Storage for queued message contents, with reference counts per segment
/// so whole segments are freed once nothing refers to them.
pub trait Arena: Send {
    /// Writes a record held by `refs` queue entries.
    fn append(&mut self, msg: &NewMessage<'_>, refs: u32) -> Result<Loc, ArenaError>;
    fn get(&self, loc: Loc) -> Option<MessageView<'_>>;
    /// One queue entry referring to `loc` is gone for good.
    fn release(&mut self, loc: Loc);
    /// Periodic housekeeping (e.g. returning resident pages of cold segments).
    fn maintain(&mut self) {}
    /// (segments alive, bytes in them).
    fn usage(&self) -> (usize, u64);
}

/// Segment bookkeeping shared by arena implementations.
#[derive(Debug, Default)]
pub struct SegmentRefs {
    /// Live references per segment number (index = segment - base).
    refs: std::collections::VecDeque<u64>,
    /// Segment number of `refs[0]`.
    base: u32,
}

impl SegmentRefs {
    pub fn open_segment(&mut self, seg: u32) {
        if self.refs.is_empty() {
            self.base = seg;
        }
        while self.base as usize + self.refs.len() <= seg as usize {
            self.refs.push_back(0);
        }
    }
    pub fn add(&mut self, seg: u32, n: u64) {
        if let Some(r) = seg
            .checked_sub(self.base)
            .and_then(|i| self.refs.get_mut(i as usize))
        {
            *r += n;
        }
    }
    /// Returns true when the segment dropped to zero references.
    pub fn sub(&mut self, seg: u32) -> bool {
        match seg
            .checked_sub(self.base)
            .and_then(|i| self.refs.get_mut(i as usize))
        {
            Some(r) if *r > 0 => {
                *r -= 1;
                *r == 0
            }
            _ => false,
        }
    }
    pub fn count(&self, seg: u32) -> u64 {
        seg.checked_sub(self.base)
            .and_then(|i| self.refs.get(i as usize))
            .copied()
            .unwrap_or(0)
    }
    /// Drops leading zero-reference segments older than `current`.
    pub fn trim_front(&mut self, current: u32) {
        while self.base < current && self.refs.front() == Some(&0) {
            self.refs.pop_front();
            self.base += 1;
        }
    }
}

/// Splits a [`Loc`].
pub fn split(loc: Loc) -> (u32, usize) {
    ((loc >> 32) as u32, (loc & 0xffff_ffff) as usize)
}

/// In-memory arena: segments are heap buffers.
pub struct MemArena {
    segment_size_bytes: usize,
    segments: rustc_hash::FxHashMap<u32, Vec<u8>>,
    current: u32,
    refs: SegmentRefs,
}

impl MemArena {
    pub fn new(segment_size_bytes: usize) -> MemArena {
        let mut refs = SegmentRefs::default();
        refs.open_segment(0);
        let mut segments = rustc_hash::FxHashMap::default();
        segments.insert(0, Vec::with_capacity(segment_size_bytes));
        MemArena {
            segment_size_bytes,
            segments,
            current: 0,
            refs,
        }
    }

    fn free_if_unused(&mut self, seg: u32) {
        if seg != self.current && self.refs.count(seg) == 0 {
            self.segments.remove(&seg);
            self.refs.trim_front(self.current);
        }
    }
}

impl Arena for MemArena {
    fn append(&mut self, msg: &NewMessage<'_>, refs: u32) -> Result<Loc, ArenaError> {
        let len = msg.record_len();
        let cur_len = self.segments.get(&self.current).map_or(0, |s| s.len());
        if cur_len > 0 && cur_len + len > self.segment_size_bytes {
            let old = self.current;
            self.current += 1;
            self.refs.open_segment(self.current);
            self.segments.insert(
                self.current,
                Vec::with_capacity(self.segment_size_bytes.max(len)),
            );
            self.free_if_unused(old);
        }
        let seg = self.segments.entry(self.current).or_default();
        let offset = seg.len();
        seg.resize(offset + len, 0);
        msg.encode_into(&mut seg[offset..]);
        self.refs.add(self.current, u64::from(refs));
        Ok((u64::from(self.current) << 32) | offset as u64)
    }

    fn get(&self, loc: Loc) -> Option<MessageView<'_>> {
        let (seg, off) = split(loc);
        decode_record(self.segments.get(&seg)?.get(off..)?)
    }

    fn release(&mut self, loc: Loc) {
        let (seg, _) = split(loc);
        if self.refs.sub(seg) {
            self.free_if_unused(seg);
        }
    }

    fn usage(&self) -> (usize, u64) {
        (
            self.segments.len(),
            self.segments.values().map(|s| s.len() as u64).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<'a>(body: &'a [u8]) -> NewMessage<'a> {
        NewMessage {
            meta: RecordMeta {
                published_ms: 7,
                expiration_ms: u64::MAX,
                store_id: 3,
                persistent: true,
            },
            exchange: "ex",
            routing_key: "rk",
            properties: b"\x10\x00\x02",
            body,
            stored_at: None,
        }
    }

    #[test]
    fn round_trip_and_segment_freeing() {
        let mut a = MemArena::new(256);
        let mut locs = Vec::new();
        for i in 0..20u8 {
            locs.push(a.append(&msg(&[i; 40]), 1).unwrap());
        }
        let v = a.get(locs[5]).unwrap();
        assert_eq!(
            (v.exchange, v.routing_key, v.body),
            ("ex", "rk", &[5u8; 40][..])
        );
        assert_eq!(v.meta.store_id, 3);
        assert!(v.meta.persistent);
        assert!(locs.windows(2).all(|w| w[0] < w[1]));
        let (segs_before, _) = a.usage();
        assert!(segs_before > 3);
        for l in &locs[..15] {
            a.release(*l);
        }
        let (segs_after, _) = a.usage();
        assert!(segs_after < segs_before);
        assert_eq!(a.get(locs[19]).unwrap().body, &[19u8; 40][..]);
    }

    #[test]
    fn stub_keeps_meta_lengths_priority_and_store_place() {
        let mut a = MemArena::new(1 << 12);
        let mut props = bytes::BytesMut::new();
        amqp_codec::BasicProperties {
            priority: Some(6),
            ..Default::default()
        }
        .encode(&mut props);
        let at = StoredAt {
            segment: 0xdead_beef,
            offset: 0x1234_5678,
        };
        let new = NewMessage {
            properties: &props,
            stored_at: Some(at),
            ..msg(&[9; 300])
        };
        assert_eq!(new.record_len(), STUB_RECORD_BYTES);
        let loc = a.append(&new, 1).unwrap();
        let v = a.get(loc).unwrap();
        assert_eq!(v.meta, new.meta);
        assert_eq!(
            (v.stored_at, v.body_len, v.stub_priority),
            (Some(at), 300, 6)
        );
        assert!(v.body.is_empty() && v.properties.is_empty());
        assert_eq!(a.usage().1, STUB_RECORD_BYTES as u64);
        // A full record after it still decodes as one.
        let full = a.append(&msg(b"abc"), 1).unwrap();
        assert_eq!(a.get(full).unwrap().stored_at, None);
        assert_eq!(a.get(full).unwrap().body, b"abc");
    }

    #[test]
    fn oversized_record_gets_its_own_segment() {
        let mut a = MemArena::new(64);
        let small = a.append(&msg(b"x"), 1).unwrap();
        let big = a.append(&msg(&[1; 500]), 1).unwrap();
        assert_ne!(split(small).0, split(big).0);
        assert_eq!(a.get(big).unwrap().body.len(), 500);
    }
}
