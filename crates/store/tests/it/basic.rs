//! Behaviour on the real file system: round trips, segment deletion,
//! definitions compaction, queue re-declaration, concurrent syncs.

use std::sync::{Arc, Mutex};

use broker_core::persist::{MessageId, PersistError, Persistence, QueueDef, Syncer};
use store::{open, StoreConfig};

use crate::common::*;

fn files(dir: &TempDir, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn roundtrip_definitions_and_messages() {
    let dir = TempDir::new("roundtrip");
    let (mut s, sy, rec) = open(dir.path(), StoreConfig::default()).expect("open");
    assert!(rec.warnings.is_empty() && rec.queues.is_empty());
    s.put_exchange(&exchange("ex")).expect("ex");
    s.put_queue(&queue("a")).expect("a");
    s.put_queue(&queue("b")).expect("b");
    s.put_binding(&binding("ex", "a", "k")).expect("bind");
    let (m1, _) = s
        .append_message(VH, &message("one").as_record(), &["a", "b"])
        .expect("m1");
    let (m2, _) = s
        .append_message(VH, &message("two").as_record(), &["a"])
        .expect("m2");
    let (m3, seq) = s
        .append_message(VH, &message("three").as_record(), &["b", "nonexistent"])
        .expect("m3");
    s.remove_message(VH, "a", m1).expect("ack");
    assert!(m1 < m2 && m2 < m3);
    assert!(sy.sync().expect("sync") > seq);
    drop((s, sy));

    let (mut s, _, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert_eq!(rec.exchanges, vec![exchange("ex")]);
    assert_eq!(rec.queues, vec![queue("a"), queue("b")]);
    assert_eq!(rec.bindings, vec![binding("ex", "a", "k")]);
    let qm: Vec<(String, Vec<MessageId>)> = rec
        .queue_messages
        .iter()
        .map(|(_, n, ids)| (n.clone(), ids.clone()))
        .collect();
    assert_eq!(qm, vec![("a".into(), vec![m2]), ("b".into(), vec![m1, m3])]);
    let ids: Vec<MessageId> = rec.messages.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![m1, m2, m3]);
    assert_eq!(rec.messages[0].1, message("one"));
    let (m4, _) = s
        .append_message(VH, &message("four").as_record(), &["a"])
        .expect("m4");
    assert!(m4 > m3, "ids continue after recovery");
}

#[test]
fn settled_segments_are_deleted() {
    let dir = TempDir::new("segdel");
    let cfg = StoreConfig {
        segment_size_bytes: 200,
        ..StoreConfig::default()
    };
    let (mut s, sy, _) = open(dir.path(), cfg.clone()).expect("open");
    s.put_queue(&queue("q")).expect("q");
    let ids: Vec<MessageId> = (0..50)
        .map(|i| {
            s.append_message(VH, &message(&format!("body {i}")).as_record(), &["q"])
                .expect("append")
                .0
        })
        .collect();
    sy.sync().expect("sync");
    assert!(files(&dir, "msgs.").len() > 5, "small segments roll over");
    for id in &ids[..45] {
        s.remove_message(VH, "q", *id).expect("ack");
    }
    sy.sync().expect("sync");
    let left = files(&dir, "msgs.");
    assert!(left.len() <= 3, "settled segments remain: {left:?}");
    for id in &ids[45..] {
        s.remove_message(VH, "q", *id).expect("ack");
    }
    sy.sync().expect("sync");
    assert_eq!(
        files(&dir, "msgs.").len(),
        1,
        "only the current segment is kept"
    );
    drop((s, sy));
    let (_, _, rec) = open(dir.path(), cfg).expect("reopen");
    assert!(
        rec.messages.is_empty() && rec.warnings.is_empty(),
        "{:?}",
        rec.warnings
    );
    assert!(files(&dir, "msgs.").is_empty() && files(&dir, "acks.").is_empty());
}

#[test]
fn deleted_queue_messages_do_not_return_in_a_new_queue_of_that_name() {
    let dir = TempDir::new("redeclare");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    s.put_queue(&queue("q")).expect("q");
    s.put_queue(&queue("keep")).expect("keep");
    s.append_message(VH, &message("old").as_record(), &["q", "keep"])
        .expect("old");
    s.delete_queue(VH, "q").expect("delete");
    s.put_queue(&queue("q")).expect("again");
    let (new, _) = s
        .append_message(VH, &message("new").as_record(), &["q"])
        .expect("new");
    sy.sync().expect("sync");
    drop((s, sy));
    let (_, _, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
    let q = rec
        .queue_messages
        .iter()
        .find(|(_, n, _)| n == "q")
        .expect("q exists");
    assert_eq!(q.2, vec![new]);
    assert_eq!(rec.messages.len(), 2);
}

#[test]
fn vhosts_are_separate() {
    let dir = TempDir::new("vhosts");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    let other = QueueDef {
        vhost: "v2".into(),
        ..queue("q")
    };
    s.put_queue(&queue("q")).expect("q");
    s.put_queue(&other).expect("v2 q");
    let (id, _) = s
        .append_message("v2", &message("x").as_record(), &["q"])
        .expect("append");
    s.remove_message(VH, "q", id)
        .expect("no-op: held by v2/q only");
    sy.sync().expect("sync");
    drop((s, sy));
    let (_, _, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
    let held: Vec<_> = rec
        .queue_messages
        .iter()
        .filter(|(_, _, ids)| !ids.is_empty())
        .collect();
    assert_eq!(held, vec![&("v2".to_string(), "q".to_string(), vec![id])]);
}

#[test]
fn definitions_log_is_compacted_at_open() {
    let dir = TempDir::new("compact");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    for i in 0..2000 {
        s.put_queue(&queue(&format!("tmp{i}"))).expect("q");
        s.delete_queue(VH, &format!("tmp{i}")).expect("del");
    }
    s.put_queue(&queue("kept")).expect("kept");
    sy.sync().expect("sync");
    let before = std::fs::metadata(dir.path().join("defs.log"))
        .expect("defs")
        .len();
    drop((s, sy));
    let (mut s, _, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
    let after = std::fs::metadata(dir.path().join("defs.log"))
        .expect("defs")
        .len();
    assert_eq!(rec.queues, vec![queue("kept")]);
    assert!(
        after < 200 && before > 20 * after,
        "before {before} after {after}"
    );
    // Queue ids are never reused, even for queues deleted before compaction.
    s.put_queue(&queue("tmp1")).expect("redeclare");
}

#[test]
fn oversized_message_is_refused_without_failing_the_store() {
    let dir = TempDir::new("oversize");
    let cfg = StoreConfig {
        record_size_max_bytes: 1024,
        ..StoreConfig::default()
    };
    let (mut s, sy, _) = open(dir.path(), cfg).expect("open");
    s.put_queue(&queue("q")).expect("q");
    let big = "x".repeat(2000);
    assert!(matches!(
        s.append_message(VH, &message(&big).as_record(), &["q"]),
        Err(PersistError::Io(_))
    ));
    s.append_message(VH, &message("small").as_record(), &["q"])
        .expect("store still works");
    sy.sync().expect("sync");
}

#[test]
fn concurrent_syncs_cover_all_earlier_appends() {
    let dir = TempDir::new("concurrent");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    s.put_queue(&queue("q")).expect("q");
    let store = Arc::new(Mutex::new(s));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, sy) = (Arc::clone(&store), Arc::clone(&sy));
            std::thread::spawn(move || {
                for i in 0..200 {
                    let (_, seq) = store
                        .lock()
                        .expect("lock")
                        .append_message(VH, &message(&format!("{t}-{i}")).as_record(), &["q"])
                        .expect("append");
                    assert!(
                        sy.sync().expect("sync") >= seq,
                        "sync returned before our record"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    drop((store, sy));
    let (_, _, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
    assert_eq!(rec.messages.len(), 800);
}

#[test]
fn a_folder_cannot_be_opened_twice() {
    let dir = TempDir::new("lock");
    let first = open(dir.path(), StoreConfig::default()).expect("open");
    assert!(
        open(dir.path(), StoreConfig::default()).is_err(),
        "second open must fail"
    );
    drop(first);
    open(dir.path(), StoreConfig::default()).expect("open after the first closed");
}

/// Users, vhosts, permissions and limits survive a reopen, and the
/// compacted log keeps exactly their folded state.
#[test]
fn access_records_survive_reopen_and_compaction() {
    use broker_core::access_state::{AccessRecord, AccessState};
    let dir = TempDir::new("access");
    let (mut s, sy, rec) = open(dir.path(), StoreConfig::default()).expect("open");
    assert!(!rec.access.seeded, "a fresh store has no access state");
    let mut rng = Rng(7);
    let mut model = AccessState::default();
    for rec in std::iter::once(AccessRecord::Seeded)
        .chain((0..500).map(|_| random_access_record(&mut rng)))
    {
        s.put_access(&rec).expect("put");
        model.apply(rec);
    }
    sy.sync().expect("sync");
    drop((s, sy));
    for _ in 0..2 {
        let (_s, _sy, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(rec.access, model);
        assert!(!model.users.is_empty() || !model.vhosts.is_empty());
        let p = &model.params;
        assert!(
            !p.policies.is_empty() || !p.operator_policies.is_empty(),
            "no policy left to check"
        );
        assert!(!p.parameters.is_empty() || !p.global.is_empty());
    }
}

/// A version-2 log (users and vhosts, no policy records) is read by this
/// version, which then appends policy records to it; both survive.
#[test]
fn a_version_2_log_is_read_and_extended() {
    use broker_core::access_state::AccessRecord;
    use broker_core::params::{ParamRecord, PolicyKind};
    let dir = TempDir::new("v2");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    s.put_access(&AccessRecord::Seeded).expect("seeded");
    let vhost = broker_core::access::VhostRecord {
        name: "v".into(),
        ..Default::default()
    };
    s.put_access(&AccessRecord::PutVhost(vhost)).expect("vhost");
    sy.sync().expect("sync");
    drop((s, sy));
    let path = dir.path().join("defs.log");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let (mut s, sy, rec) = open(dir.path(), StoreConfig::default()).expect("reopen v2");
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert!(rec.access.seeded && rec.access.vhosts.contains_key("v"));
    let put = ParamRecord::PutGlobal("cluster_name".into(), "\"c\"".into());
    s.put_access(&AccessRecord::Param(put)).expect("global");
    let policy = broker_core::params::Policy {
        pattern: ".*".into(),
        apply_to: "all".into(),
        priority: 1,
        definition: "{}".into(),
    };
    let put = ParamRecord::PutPolicy(PolicyKind::User, "v".into(), "p".into(), policy);
    s.put_access(&AccessRecord::Param(put)).expect("policy");
    sy.sync().expect("sync");
    drop((s, sy));
    let (_s, _sy, rec) = open(dir.path(), StoreConfig::default()).expect("reopen");
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert!(rec.access.vhosts.contains_key("v"));
    assert_eq!(rec.access.params.global["cluster_name"], "\"c\"");
    assert!(rec
        .access
        .params
        .policies
        .contains_key(&("v".into(), "p".into())));
}

/// A version-1 definitions log (the released format) is read, and has no
/// access state: the broker then creates its defaults.
#[test]
fn a_version_1_log_is_read_without_access_state() {
    let dir = TempDir::new("v1");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    s.put_queue(&queue("old")).expect("q");
    sy.sync().expect("sync");
    drop((s, sy));
    let path = dir.path().join("defs.log");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let (_s, _sy, rec) = open(dir.path(), StoreConfig::default()).expect("reopen v1");
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert_eq!(rec.queues, vec![queue("old")]);
    assert!(!rec.access.seeded);
}

#[test]
fn io_counters_count_appends_bytes_and_syncs() {
    let dir = TempDir::new("io-counters");
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    let before = sy.io();
    s.put_queue(&queue("a")).expect("a");
    let body = "x".repeat(1000);
    s.append_message(VH, &message(&body).as_record(), &["a"])
        .expect("m");
    sy.sync().expect("sync");
    let after = sy.io();
    // defs.log and the new segment (header + record): at least 3 appends,
    // the body's bytes, and a sync per file plus the folder's.
    assert!(
        after.write_ops >= before.write_ops + 3,
        "{before:?} -> {after:?}"
    );
    assert!(after.write_bytes >= before.write_bytes + 1000, "{after:?}");
    assert!(after.sync_ops >= before.sync_ops + 3, "{after:?}");
    assert_eq!(after.write_bytes, sy.written_bytes());
    // Nothing buffered: a sync writes nothing more.
    sy.sync().expect("sync again");
    assert_eq!(sy.io().write_ops, after.write_ops);
}
