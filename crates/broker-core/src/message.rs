//! A message's entry in a queue: 8 bytes pointing into the arena.

use crate::arena::Loc;

/// One queued (or delivered-unacked) message: its arena location with the
/// redelivered flag in bit 0 (locations are 8-byte aligned). The location
/// also orders messages, so requeued ones return to their old position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedMessage(u64);

impl QueuedMessage {
    pub fn new(loc: Loc) -> QueuedMessage {
        debug_assert_eq!(loc & 7, 0);
        QueuedMessage(loc)
    }
    pub fn loc(self) -> Loc {
        self.0 & !7
    }
    /// Position in queue order.
    pub fn position(self) -> u64 {
        self.loc()
    }
    pub fn redelivered(self) -> bool {
        self.0 & 1 == 1
    }
    pub fn set_redelivered(&mut self) {
        self.0 |= 1;
    }
}

/// Milliseconds since the broker started, from the monotonic clock.
/// Reading the clock is not I/O; keeping it here lets TTLs be computed
/// without the server passing time around.
/// In the core's own tests a thread that built a `testkit::Core` reads that
/// core's virtual clock instead, so TTLs are tested without sleeping.
pub fn now_ms() -> u64 {
    #[cfg(test)]
    if let Some(ms) = crate::testkit::test_clock_ms() {
        return ms;
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}
