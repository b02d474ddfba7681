//! A progress line while a big recovery runs: the store streams messages
//! into the broker's `Restorer` through [`Progress`], which counts them
//! (and the segments they come from) and logs
//! `recovering: N messages, M queues, S segments` at most once every
//! `PROGRESS_INTERVAL_MS` (nothing for a recovery shorter than that). The
//! clock is read once every `PROGRESS_CHECK_MESSAGES` messages, not per
//! message.

use std::time::{Duration, Instant};

use broker_core::persist::{MessageId, MessageRecord, RecoveredDefs, RestoreSink, StoredAt};

/// Least time between two progress lines, and before the first.
pub const PROGRESS_INTERVAL_MS: u64 = 1000;

/// Messages between two clock reads.
pub const PROGRESS_CHECK_MESSAGES: u64 = 8192;

/// A [`RestoreSink`] that forwards everything to `inner` and reports.
pub struct Progress<'a> {
    /// The broker's restorer.
    inner: &'a mut dyn RestoreSink,
    /// Messages recovered so far.
    messages: u64,
    /// Durable queues recovered (from the definitions).
    queues: usize,
    /// Segments the messages came from so far (they arrive in segment
    /// order, so a change of segment is a new one).
    segments: u64,
    /// The segment of the last message.
    last_segment: Option<u32>,
    /// When the last line was logged (or recovery began).
    last_line: Instant,
    /// Lines logged.
    pub lines: u64,
}

impl<'a> Progress<'a> {
    /// Reports on what `inner` receives, starting now.
    pub fn new(inner: &'a mut dyn RestoreSink) -> Progress<'a> {
        Progress {
            inner,
            messages: 0,
            queues: 0,
            segments: 0,
            last_segment: None,
            last_line: Instant::now(),
            lines: 0,
        }
    }

    /// The progress line now, when one is due at `now`.
    pub fn line_at(&mut self, now: Instant) -> Option<String> {
        if now.duration_since(self.last_line) < Duration::from_millis(PROGRESS_INTERVAL_MS) {
            return None;
        }
        self.last_line = now;
        self.lines += 1;
        Some(format!(
            "recovering: {} messages, {} queues, {} segments",
            self.messages, self.queues, self.segments
        ))
    }

    /// Counts one message; every `PROGRESS_CHECK_MESSAGES` reads the clock.
    fn counted(&mut self) {
        self.messages += 1;
        if self.messages.is_multiple_of(PROGRESS_CHECK_MESSAGES) {
            if let Some(line) = self.line_at(Instant::now()) {
                tracing::info!("{line}");
            }
        }
    }
}

impl RestoreSink for Progress<'_> {
    fn definitions(&mut self, defs: RecoveredDefs) {
        self.queues = defs.queues.len();
        self.inner.definitions(defs);
    }

    fn message(&mut self, id: MessageId, queues: &[u32], msg: &MessageRecord<'_>) {
        self.inner.message(id, queues, msg);
        self.counted();
    }

    fn timed_message(
        &mut self,
        id: MessageId,
        queues: &[u32],
        msg: &MessageRecord<'_>,
        due_ms: u64,
    ) {
        self.inner.timed_message(id, queues, msg, due_ms);
        self.counted();
    }

    fn stored_message(
        &mut self,
        id: MessageId,
        queues: &[u32],
        msg: &MessageRecord<'_>,
        at: StoredAt,
        due_ms: Option<u64>,
    ) {
        if self.last_segment != Some(at.segment) {
            self.last_segment = Some(at.segment);
            self.segments += 1;
        }
        self.inner.stored_message(id, queues, msg, at, due_ms);
        self.counted();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what reaches it.
    #[derive(Default)]
    struct Count {
        /// Messages received.
        messages: u64,
    }

    impl RestoreSink for Count {
        fn definitions(&mut self, _defs: RecoveredDefs) {}
        fn message(&mut self, _id: MessageId, _q: &[u32], _m: &MessageRecord<'_>) {
            self.messages += 1;
        }
    }

    #[test]
    fn forwards_everything_and_reports_once_a_second() {
        let mut inner = Count::default();
        let msg = MessageRecord {
            exchange: "",
            routing_key: "q",
            properties: &[],
            body: b"x",
        };
        let started = Instant::now();
        {
            let mut p = Progress::new(&mut inner);
            p.definitions(RecoveredDefs::default());
            for (i, segment) in [(1, 0), (2, 0), (3, 7), (4, 8)] {
                let at = StoredAt { segment, offset: 0 };
                p.stored_message(i, &[0], &msg, at, None);
            }
            p.message(5, &[0], &msg);
            // A fast recovery says nothing; a second later it does, once.
            assert_eq!(p.line_at(started), None);
            let later = started + Duration::from_millis(PROGRESS_INTERVAL_MS + 1);
            assert_eq!(
                p.line_at(later).as_deref(),
                Some("recovering: 5 messages, 0 queues, 3 segments")
            );
            assert_eq!(p.line_at(later), None);
            assert_eq!(p.lines, 1);
        }
        assert_eq!(inner.messages, 5);
    }
}
