//! Reading message records back (`Persistence::read_message`) on the real
//! file system: before and after the sync, across segments, after a
//! restart (the records recovery names), and segments still deleted once
//! a segment that was read from is settled.

use broker_core::persist::{
    MessageId, MessageRecord, Persistence, RecoveredDefs, RestoreSink, StoredAt,
};
use store::{open, open_into, StoreConfig};

use crate::common::*;

/// Collects where recovery says each message's record is.
#[derive(Default)]
struct Ats(Vec<(MessageId, StoredAt)>);

impl RestoreSink for Ats {
    fn definitions(&mut self, _: RecoveredDefs) {}
    fn message(&mut self, _: MessageId, _: &[u32], _: &MessageRecord<'_>) {
        panic!("recovery must name the record of every message it can");
    }
    fn stored_message(
        &mut self,
        id: MessageId,
        _: &[u32],
        _: &MessageRecord<'_>,
        at: StoredAt,
        _: Option<u64>,
    ) {
        self.0.push((id, at));
    }
}

fn segments(dir: &TempDir) -> usize {
    std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("msgs."))
        .count()
}

#[test]
fn records_read_back_before_and_after_sync_and_restart() {
    let dir = TempDir::new("reads");
    let config = StoreConfig {
        segment_size_bytes: 4096,
        ..StoreConfig::default()
    };
    let body = |i: u64| format!("body-{i}-{}", "y".repeat((i % 300) as usize));
    let mut written = Vec::new();
    {
        let (mut s, sy, _) = open(dir.path(), config.clone()).expect("open");
        s.put_queue(&queue("a")).expect("a");
        s.put_queue(&queue("b")).expect("b");
        for i in 0..200u64 {
            let targets: &[&str] = if i % 3 == 0 { &["a", "b"] } else { &["a"] };
            let a = s
                .append(VH, &message(&body(i)).as_record(), targets, None)
                .expect("append");
            let at = a.at.expect("held by every named queue: readable");
            // Readable at once, from the buffer ...
            let r = s.read_message(at).expect("read unsynced");
            assert_eq!(r.body, body(i).as_bytes());
            written.push((a.id, at, i));
            if i % 17 == 0 {
                sync_ok(&sy);
            }
        }
        // ... and every one of them after the syncs, from its file.
        sync_ok(&sy);
        for (_, at, i) in &written {
            let r = s.read_message(*at).expect("read synced");
            assert_eq!((r.exchange, r.body), ("ex", body(*i).as_bytes()));
        }
        assert!(segments(&dir) > 5, "the test must span segments");
        // A queue the store does not hold it for: no read-back place.
        let a = s
            .append(VH, &message("t").as_record(), &["a", "transient"], None)
            .expect("append");
        assert_eq!(a.at, None);
        s.remove_message(VH, "a", a.id).expect("release");
        sync_ok(&sy);
    }
    // After a restart: recovery names every record, and they read back.
    let mut ats = Ats::default();
    let (mut s, sy, warnings) = open_into(dir.path(), config, &mut ats).expect("reopen");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(ats.0.len(), written.len());
    for ((id, at), (wid, _, i)) in ats.0.iter().zip(&written) {
        assert_eq!(id, wid);
        let r = s.read_message(*at).expect("read recovered");
        assert_eq!(r.body, body(*i).as_bytes());
    }
    // Settling everything gives the segments back even though they were
    // mapped for reads.
    for (id, _, i) in &written {
        s.remove_message(VH, "a", *id).expect("ack a");
        if i % 3 == 0 {
            s.remove_message(VH, "b", *id).expect("ack b");
        }
    }
    sync_ok(&sy);
    assert_eq!(segments(&dir), 0, "settled segments deleted");
}
