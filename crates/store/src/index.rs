//! The store's in-memory account of live persistent messages: which segment
//! each lives in and which queue(s) still hold it.
//!
//! Dense per segment, because segments are append-only and ids only grow:
//! a segment keeps the ids of its messages (as `u32` offsets from its first
//! id, sorted) and, beside each, the slot of the one queue holding it. That
//! is 8 bytes per message and no allocation per message; lookups are a
//! binary search over segments and then over one segment's ids. Only a
//! message held by several queues at once gets a map entry listing them.
//! (The first design, a `HashMap` plus a per-queue `BTreeSet` entry per
//! message, cost ~66 B per message and dominated recovery of 10M messages.)

use std::collections::HashMap;

use broker_core::persist::MessageId;

use crate::record::QueueId;

/// Dense number of a durable queue. Slots are handed out in order and never
/// reused; at recovery, slot `i` is the `i`-th recovered queue.
pub(crate) type Slot = u32;

/// Holder value: no queue holds the message any more.
const SETTLED: u32 = u32::MAX;
/// Holder value: several queues hold it; see `Index::multi`.
const MULTI: u32 = u32::MAX - 1;

/// The live messages of one segment file.
pub(crate) struct Segment {
    pub num: u32,
    /// Id of the first message indexed here.
    base: MessageId,
    /// `id - base` of each message, ascending.
    ids: Vec<u32>,
    /// Beside each id: the slot holding it, `MULTI` or `SETTLED`.
    holders: Vec<u32>,
    /// Messages here not yet `SETTLED`.
    pub live: u64,
    /// Its acks file exists (or its creation is pending).
    pub has_acks: bool,
    /// Slots that ever held a message here, sorted: a queue delete visits
    /// only the segments that can mention it.
    slots: Vec<Slot>,
}

impl Segment {
    fn find(&self, id: MessageId) -> Option<usize> {
        let off = u32::try_from(id.checked_sub(self.base)?).ok()?;
        self.ids.binary_search(&off).ok()
    }
}

/// What releasing one hold did.
pub(crate) struct Released {
    /// Segment of the message.
    pub segment: u32,
    /// Messages still live in that segment.
    pub segment_live: u64,
}

#[derive(Default)]
pub(crate) struct Index {
    /// Ascending by `num` and by `base` alike.
    segments: Vec<Segment>,
    slots: HashMap<QueueId, Slot>,
    next_slot: Slot,
    /// Remaining holders of messages held by more than one queue.
    multi: HashMap<MessageId, Vec<Slot>>,
}

impl Index {
    /// The slot of `queue`, assigning the next one if it has none.
    pub fn slot(&mut self, queue: QueueId) -> Slot {
        *self.slots.entry(queue).or_insert_with(|| {
            let s = self.next_slot;
            self.next_slot += 1;
            s
        })
    }

    /// Forgets a deleted queue's slot (after `release_all`).
    pub fn forget(&mut self, queue: QueueId) {
        self.slots.remove(&queue);
    }

    pub fn slot_of(&self, queue: QueueId) -> Option<Slot> {
        self.slots.get(&queue).copied()
    }

    pub fn segment(&self, num: u32) -> Option<&Segment> {
        let i = self.segments.binary_search_by_key(&num, |s| s.num).ok()?;
        self.segments.get(i)
    }

    pub fn segment_mut(&mut self, num: u32) -> Option<&mut Segment> {
        let i = self.segments.binary_search_by_key(&num, |s| s.num).ok()?;
        self.segments.get_mut(i)
    }

    /// Forgets a segment (deleted once settled). Its remaining entries, if
    /// any, go with it.
    pub fn remove_segment(&mut self, num: u32) {
        if let Ok(i) = self.segments.binary_search_by_key(&num, |s| s.num) {
            let seg = self.segments.remove(i);
            if seg.live > 0 {
                for (off, h) in seg.ids.iter().zip(&seg.holders) {
                    if *h == MULTI {
                        self.multi.remove(&(seg.base + u64::from(*off)));
                    }
                }
            }
        }
    }

    /// Whether `id` can be indexed in the last segment, which must be
    /// `num` (ids must grow and stay within `u32` of the segment's base).
    pub fn fits(&self, num: u32, id: MessageId) -> bool {
        match self.segments.last() {
            Some(s) if s.num == num => {
                id.checked_sub(s.base)
                    .is_some_and(|d| d <= u64::from(u32::MAX))
                    && s.ids.last().is_none_or(|l| u64::from(*l) < id - s.base)
            }
            Some(s) => s.num < num,
            None => true,
        }
    }

    /// Records that `slots` (non-empty, distinct) hold message `id` of
    /// segment `num`. The caller checked `fits(num, id)`.
    pub fn push(&mut self, num: u32, id: MessageId, slots: &[Slot], has_acks: bool) {
        if self.segments.last().is_none_or(|s| s.num != num) {
            self.segments.push(Segment {
                num,
                base: id,
                ids: Vec::new(),
                holders: Vec::new(),
                live: 0,
                has_acks,
                slots: Vec::new(),
            });
        }
        let Some(seg) = self.segments.last_mut() else {
            return;
        };
        seg.ids.push((id - seg.base) as u32);
        for s in slots {
            if let Err(at) = seg.slots.binary_search(s) {
                seg.slots.insert(at, *s);
            }
        }
        match slots {
            [one] => seg.holders.push(*one),
            _ => {
                seg.holders.push(MULTI);
                self.multi.insert(id, slots.to_vec());
            }
        }
        seg.live += 1;
    }

    /// A closed segment grows no more: give back its spare capacity.
    pub fn seal(&mut self, num: u32) {
        if let Some(s) = self.segment_mut(num) {
            s.ids.shrink_to_fit();
            s.holders.shrink_to_fit();
        }
    }

    /// Drops `slot`'s hold on `id`. `None` if it held none.
    pub fn release(&mut self, slot: Slot, id: MessageId) -> Option<Released> {
        let si = self
            .segments
            .partition_point(|s| s.base <= id)
            .checked_sub(1)?;
        let seg = self.segments.get_mut(si)?;
        let pos = seg.find(id)?;
        let holder = seg.holders.get_mut(pos)?;
        if *holder == MULTI {
            let slots = self.multi.get_mut(&id)?;
            let at = slots.iter().position(|s| *s == slot)?;
            slots.swap_remove(at);
            if !slots.is_empty() {
                return Some(Released {
                    segment: seg.num,
                    segment_live: seg.live,
                });
            }
            self.multi.remove(&id);
        } else if *holder != slot {
            return None;
        }
        *holder = SETTLED;
        seg.live -= 1;
        Some(Released {
            segment: seg.num,
            segment_live: seg.live,
        })
    }

    /// Drops every hold of `slot` (its queue was deleted). Returns the
    /// segments left with no live message.
    pub fn release_all(&mut self, slot: Slot) -> Vec<u32> {
        let mut emptied = Vec::new();
        for seg in &mut self.segments {
            if seg.slots.binary_search(&slot).is_err() {
                continue;
            }
            for (off, holder) in seg.ids.iter().zip(seg.holders.iter_mut()) {
                let settled = if *holder == slot {
                    true
                } else if *holder == MULTI {
                    let id = seg.base + u64::from(*off);
                    match self.multi.get_mut(&id) {
                        Some(slots) => {
                            slots.retain(|s| *s != slot);
                            let gone = slots.is_empty();
                            if gone {
                                self.multi.remove(&id);
                            }
                            gone
                        }
                        None => false,
                    }
                } else {
                    false
                };
                if settled {
                    *holder = SETTLED;
                    seg.live -= 1;
                }
            }
            if let Ok(at) = seg.slots.binary_search(&slot) {
                seg.slots.remove(at);
            }
            if seg.live == 0 {
                emptied.push(seg.num);
            }
        }
        emptied
    }

    /// The live messages of segment `num`, in id order: each message's id,
    /// its position among the segment's indexed messages, and the slots
    /// holding it.
    pub fn for_each_live(&self, num: u32, mut f: impl FnMut(MessageId, usize, &[Slot])) {
        let Some(seg) = self.segment(num) else {
            return;
        };
        for (pos, (off, holder)) in seg.ids.iter().zip(&seg.holders).enumerate() {
            let id = seg.base + u64::from(*off);
            match *holder {
                SETTLED => {}
                MULTI => {
                    if let Some(slots) = self.multi.get(&id) {
                        f(id, pos, slots);
                    }
                }
                one => f(id, pos, &[one]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ix: &Index, num: u32) -> Vec<(MessageId, Vec<Slot>)> {
        let mut v = Vec::new();
        ix.for_each_live(num, |id, _, s| v.push((id, s.to_vec())));
        v
    }

    #[test]
    fn single_and_multi_holders_release() {
        let mut ix = Index::default();
        let (a, b) = (ix.slot(10), ix.slot(20));
        assert_eq!((a, b), (0, 1));
        assert!(ix.fits(1, 5));
        ix.push(1, 5, &[a], false);
        ix.push(1, 7, &[a, b], false);
        assert!(!ix.fits(1, 7), "ids must grow");
        ix.push(2, 9, &[b], false);
        assert_eq!(live(&ix, 1), vec![(5, vec![a]), (7, vec![a, b])]);
        assert!(ix.release(b, 5).is_none(), "b never held 5");
        assert!(ix.release(a, 6).is_none(), "no such message");
        let r = ix.release(a, 7).expect("a held 7");
        assert_eq!((r.segment, r.segment_live), (1, 2));
        assert!(ix.release(a, 7).is_none(), "double release");
        let r = ix.release(a, 5).expect("a held 5");
        assert_eq!((r.segment, r.segment_live), (1, 1));
        assert_eq!(live(&ix, 1), vec![(7, vec![b])]);
        assert_eq!(ix.release_all(b), vec![1, 2]);
        assert!(live(&ix, 1).is_empty() && live(&ix, 2).is_empty());
        assert!(ix.multi.is_empty());
    }

    #[test]
    fn ids_far_from_the_base_need_a_new_segment() {
        let mut ix = Index::default();
        let a = ix.slot(1);
        ix.push(1, 100, &[a], false);
        assert!(ix.fits(1, 100 + u64::from(u32::MAX)));
        assert!(!ix.fits(1, 101 + u64::from(u32::MAX)));
        assert!(ix.fits(2, 101 + u64::from(u32::MAX)));
        assert!(!ix.fits(0, 200), "segments only grow");
    }
}
