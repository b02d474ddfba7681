//! A queue's ready messages (waiting for a consumer), behind one interface
//! whatever the queue's kind:
//!
//! - `Fifo`: one `VecDeque` in arrival order (the plain queue; an enum
//!   match is all it costs over a bare deque).
//! - `Priority`: one lane per priority level (`x-max-priority`), served
//!   from the highest non-empty lane, FIFO within a lane.
//!
//! Every kind keeps each message's *position* (its arena location, which
//! grows with arrival) so a requeued message returns to where it was. The
//! interface is what a queue needs from its storage: `push`, `pop`,
//! `front` (the next message to deliver, which is also where expiry and
//! drop-head look), `requeue`, `len`, `purge`, `iter`, `restore`. A delayed
//! kind (ordered by due time) fits as another variant whose `push` takes the
//! due time through [`Placement`] and whose `front` is the earliest due; a
//! stream kind (offset reads that remove nothing) would implement `front`/
//! `iter` on a log and keep per-consumer offsets outside this type.

use std::collections::VecDeque;

use crate::message::QueuedMessage;

/// Highest priority RabbitMQ supports (`?MAX_SUPPORTED_PRIORITY`).
pub const PRIORITY_MAX: u8 = 255;

/// Lanes a priority queue can have: one per level 0..=255.
const PRIORITY_LANES_MAX: usize = PRIORITY_MAX as usize + 1;

/// Words of the bitmap of non-empty lanes (64 lanes per word).
const OCCUPIED_WORDS: usize = PRIORITY_LANES_MAX / 64;

/// Where a message goes in its queue, as the queue's kind needs it. Kinds
/// ignore what they do not use (FIFO ignores everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// The message's priority, already capped at the queue's maximum.
    pub priority: u8,
}

/// A priority queue's lanes: `lanes[p]` holds priority `p`'s messages in
/// position order.
#[derive(Debug)]
pub struct Lanes {
    /// One deque per priority 0..=max (index = priority).
    lanes: Vec<VecDeque<QueuedMessage>>,
    /// Bit `p` set when `lanes[p]` is non-empty (finds the top lane
    /// without scanning up to 256 deques).
    occupied: [u64; OCCUPIED_WORDS],
    /// Messages over all lanes.
    len: usize,
}

impl Lanes {
    fn new(max_priority: u8) -> Lanes {
        Lanes {
            lanes: (0..=max_priority).map(|_| VecDeque::new()).collect(),
            occupied: [0; OCCUPIED_WORDS],
            len: 0,
        }
    }

    /// The lane a priority goes to (capped at the maximum, as RabbitMQ does).
    fn lane_of(&self, priority: u8) -> usize {
        usize::from(priority).min(self.lanes.len() - 1)
    }

    /// The highest non-empty lane.
    fn top(&self) -> Option<usize> {
        (0..OCCUPIED_WORDS).rev().find_map(|w| {
            let bits = self.occupied[w];
            (bits != 0).then(|| w * 64 + 63 - bits.leading_zeros() as usize)
        })
    }

    fn mark(&mut self, lane: usize) {
        self.occupied[lane / 64] |= 1 << (lane % 64);
    }

    fn unmark_if_empty(&mut self, lane: usize) {
        if self.lanes[lane].is_empty() {
            self.occupied[lane / 64] &= !(1 << (lane % 64));
        }
    }

    fn push(&mut self, m: QueuedMessage, priority: u8) {
        let lane = self.lane_of(priority);
        self.lanes[lane].push_back(m);
        self.mark(lane);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<QueuedMessage> {
        let lane = self.top()?;
        let m = self.lanes[lane].pop_front()?;
        self.unmark_if_empty(lane);
        self.len -= 1;
        Some(m)
    }

    fn front(&self) -> Option<QueuedMessage> {
        self.lanes[self.top()?].front().copied()
    }

    fn requeue(&mut self, m: QueuedMessage, priority: u8) {
        let lane = self.lane_of(priority);
        insert_by_position(&mut self.lanes[lane], m);
        self.mark(lane);
        self.len += 1;
    }

    fn clear(&mut self) {
        self.lanes.iter_mut().for_each(VecDeque::clear);
        self.occupied = [0; OCCUPIED_WORDS];
        self.len = 0;
    }
}

/// Inserts `m` where its position belongs. Requeues usually land at or near
/// the front: the binary search finds that in a few steps.
fn insert_by_position(lane: &mut VecDeque<QueuedMessage>, m: QueuedMessage) {
    let at = lane.partition_point(|q| q.position() < m.position());
    lane.insert(at, m);
}

/// A queue's ready messages, by kind (see the module doc).
#[derive(Debug)]
pub enum Ready {
    /// Arrival order.
    Fifo(VecDeque<QueuedMessage>),
    /// One lane per priority, highest first.
    Priority(Lanes),
}

impl Ready {
    /// Storage for a queue: priority lanes 0..=max when `max_priority` is
    /// at least 1, else FIFO (RabbitMQ's `x-max-priority` 0 has one lane,
    /// which is FIFO).
    pub fn new(max_priority: Option<u8>) -> Ready {
        match max_priority {
            Some(max) if max > 0 => Ready::Priority(Lanes::new(max)),
            _ => Ready::Fifo(VecDeque::new()),
        }
    }

    /// True when `push`/`requeue` use `Placement::priority`.
    pub fn is_priority(&self) -> bool {
        matches!(self, Ready::Priority(_))
    }

    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Ready::Fifo(q) => q.len(),
            Ready::Priority(l) => l.len,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a newly arrived message.
    #[inline]
    pub fn push(&mut self, m: QueuedMessage, at: Placement) {
        match self {
            Ready::Fifo(q) => q.push_back(m),
            Ready::Priority(l) => l.push(m, at.priority),
        }
    }

    /// Takes the next message to deliver.
    #[inline]
    pub fn pop(&mut self) -> Option<QueuedMessage> {
        match self {
            Ready::Fifo(q) => q.pop_front(),
            Ready::Priority(l) => l.pop(),
        }
    }

    /// The next message to deliver, left in place.
    #[inline]
    pub fn front(&self) -> Option<QueuedMessage> {
        match self {
            Ready::Fifo(q) => q.front().copied(),
            Ready::Priority(l) => l.front(),
        }
    }

    /// Puts a message that was taken back at its original position (in its
    /// lane, for priority queues).
    pub fn requeue(&mut self, m: QueuedMessage, at: Placement) {
        match self {
            Ready::Fifo(q) => insert_by_position(q, m),
            Ready::Priority(l) => l.requeue(m, at.priority),
        }
    }

    /// Inserts at `index` in delivery order (quorum queues' returned
    /// messages, which go ahead of the rest or at the tail). Priority
    /// queues (never quorum) put the message back at its position instead.
    pub fn insert_at(&mut self, index: usize, m: QueuedMessage, at: Placement) {
        match self {
            Ready::Fifo(q) => q.insert(index.min(q.len()), m),
            Ready::Priority(l) => l.requeue(m, at.priority),
        }
    }

    /// Removes every message, in delivery order.
    pub fn purge(&mut self) -> Vec<QueuedMessage> {
        match self {
            Ready::Fifo(q) => q.drain(..).collect(),
            Ready::Priority(l) => {
                let all = l.lanes.iter().rev().flatten().copied().collect();
                l.clear();
                all
            }
        }
    }

    /// Every message, in delivery order, left in place.
    pub fn iter(&self) -> impl Iterator<Item = QueuedMessage> + '_ {
        let lanes: &[VecDeque<QueuedMessage>] = match self {
            Ready::Fifo(q) => std::slice::from_ref(q),
            Ready::Priority(l) => &l.lanes,
        };
        lanes.iter().rev().flatten().copied()
    }

    /// Installs messages recovered in position order; `placement` says
    /// where each goes (called only for kinds that use it).
    pub fn restore(
        &mut self,
        messages: Vec<QueuedMessage>,
        mut placement: impl FnMut(QueuedMessage) -> Placement,
    ) {
        match self {
            // Reuses the vector's buffer: no copy of millions of entries.
            Ready::Fifo(q) if q.is_empty() => *q = VecDeque::from(messages),
            Ready::Fifo(q) => q.extend(messages),
            Ready::Priority(l) => {
                for m in messages {
                    let p = placement(m).priority;
                    l.push(m, p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Message number `n` (positions grow with `n`).
    fn msg(n: u64) -> QueuedMessage {
        QueuedMessage::new(n * 8)
    }

    fn at(priority: u8) -> Placement {
        Placement { priority }
    }

    fn numbers(r: &Ready) -> Vec<u64> {
        r.iter().map(|m| m.loc() / 8).collect()
    }

    fn drain(r: &mut Ready) -> Vec<u64> {
        std::iter::from_fn(|| r.pop())
            .map(|m| m.loc() / 8)
            .collect()
    }

    #[test]
    fn fifo_ignores_priority() {
        let mut r = Ready::new(None);
        for (n, p) in [(1, 0), (2, 9), (3, 5)] {
            r.push(msg(n), at(p));
        }
        assert!(!r.is_priority());
        assert_eq!(r.len(), 3);
        assert_eq!(drain(&mut r), vec![1, 2, 3]);
        assert!(r.is_empty());
        // x-max-priority 0 is one lane: FIFO.
        assert!(!Ready::new(Some(0)).is_priority());
    }

    #[test]
    fn priority_serves_highest_first_fifo_within() {
        let mut r = Ready::new(Some(3));
        for (n, p) in [(1, 0), (2, 9), (3, 3), (4, 1), (5, 0), (6, 200), (7, 2)] {
            r.push(msg(n), at(p));
        }
        assert_eq!(r.len(), 7);
        assert_eq!(r.front().map(|m| m.loc() / 8), Some(2));
        // 9 and 200 are capped at 3.
        assert_eq!(numbers(&r), vec![2, 3, 6, 7, 4, 1, 5]);
        assert_eq!(drain(&mut r), vec![2, 3, 6, 7, 4, 1, 5]);
        assert_eq!(r.front(), None);
        assert!(r.is_empty());
    }

    #[test]
    fn requeue_returns_to_original_place_in_lane() {
        let mut r = Ready::new(Some(5));
        for (n, p) in [(1, 5), (2, 1), (3, 5), (4, 1), (5, 5)] {
            r.push(msg(n), at(p));
        }
        let a = r.pop().unwrap(); // 1
        let b = r.pop().unwrap(); // 3
        let c = r.pop().unwrap(); // 5
        let d = r.pop().unwrap(); // 2
        assert_eq!([a, b, c, d].map(|m| m.loc() / 8), [1, 3, 5, 2]);
        r.requeue(b, at(5));
        r.requeue(d, at(1));
        r.requeue(a, at(5));
        assert_eq!(numbers(&r), vec![1, 3, 2, 4]);
        r.requeue(c, at(5));
        assert_eq!(drain(&mut r), vec![1, 3, 5, 2, 4]);
    }

    #[test]
    fn fifo_requeue_keeps_position() {
        let mut r = Ready::new(None);
        for n in 1..=4 {
            r.push(msg(n), at(0));
        }
        let one = r.pop().unwrap();
        let two = r.pop().unwrap();
        r.requeue(two, at(0));
        r.requeue(one, at(0));
        assert_eq!(drain(&mut r), vec![1, 2, 3, 4]);
    }

    #[test]
    fn purge_empties_every_lane() {
        let mut r = Ready::new(Some(255));
        for (n, p) in [(1, 0), (2, 255), (3, 64), (4, 63), (5, 128)] {
            r.push(msg(n), at(p));
        }
        assert_eq!(
            r.purge().iter().map(|m| m.loc() / 8).collect::<Vec<_>>(),
            vec![2, 5, 3, 4, 1]
        );
        assert!(r.is_empty());
        assert_eq!(r.pop(), None);
        r.push(msg(6), at(1));
        assert_eq!(drain(&mut r), vec![6]);
    }

    #[test]
    fn lanes_across_bitmap_words() {
        let mut r = Ready::new(Some(PRIORITY_MAX));
        for p in 0..=PRIORITY_MAX {
            r.push(msg(u64::from(p) + 1), at(p));
        }
        assert_eq!(r.len(), PRIORITY_LANES_MAX);
        let order = drain(&mut r);
        let expected: Vec<u64> = (1..=256).rev().collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn restore_places_by_priority_in_order() {
        let mut r = Ready::new(Some(2));
        let prio = |m: QueuedMessage| at(((m.loc() / 8) % 3) as u8);
        r.restore((1..=6).map(msg).collect(), prio);
        assert_eq!(drain(&mut r), vec![2, 5, 1, 4, 3, 6]);
        let mut f = Ready::new(None);
        f.restore((1..=3).map(msg).collect(), |_| unreachable!());
        assert_eq!(drain(&mut f), vec![1, 2, 3]);
    }
}
