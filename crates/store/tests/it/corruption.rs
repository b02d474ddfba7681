//! Damaged files on the real file system: recovery keeps everything else and
//! says what it dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use broker_core::persist::{MessageId, Persistence, Recovered, Syncer};
use store::{open, StoreConfig};

use crate::common::*;

/// Ten messages on queue "q" (ids returned), the first three acked, one segment.
fn populate(dir: &TempDir) -> Vec<MessageId> {
    let (mut s, sy, _) = open(dir.path(), StoreConfig::default()).expect("open");
    s.put_exchange(&exchange("ex")).expect("ex");
    s.put_queue(&queue("q")).expect("q");
    s.put_binding(&binding("ex", "q", "k")).expect("bind");
    let ids: Vec<MessageId> = (0..10)
        .map(|i| {
            s.append_message(VH, &message(&format!("body-{i:02}")).as_record(), &["q"])
                .expect("append")
                .0
        })
        .collect();
    for id in &ids[..3] {
        s.remove_message(VH, "q", *id).expect("ack");
    }
    sy.sync().expect("sync");
    ids
}

fn path(dir: &TempDir, prefix: &str) -> PathBuf {
    let name = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with(prefix) && !n.ends_with(".corrupt"))
        .unwrap_or_else(|| panic!("no {prefix} file"));
    dir.path().join(name)
}

fn held(rec: &Recovered) -> Vec<MessageId> {
    rec.queue_messages
        .iter()
        .find(|(_, n, _)| n == "q")
        .map(|(_, _, ids)| ids.clone())
        .unwrap_or_default()
}

fn reopen(dir: &TempDir) -> Recovered {
    open(dir.path(), StoreConfig::default()).expect("reopen").2
}

fn mentions(rec: &Recovered, what: &str) -> bool {
    rec.warnings.iter().any(|w| w.contains(what))
}

#[test]
fn flipped_byte_in_the_middle_of_a_segment_drops_one_message() {
    let dir = TempDir::new("flip-seg");
    let ids = populate(&dir);
    let seg = path(&dir, "msgs.");
    let mut bytes = std::fs::read(&seg).expect("read");
    let at = bytes
        .windows(7)
        .position(|w| w == b"body-05")
        .expect("find body");
    bytes[at + 5] ^= 0x20;
    std::fs::write(&seg, &bytes).expect("write");
    let rec = reopen(&dir);
    let mut expect = ids[3..].to_vec();
    expect.retain(|id| *id != ids[5]);
    assert_eq!(held(&rec), expect);
    assert!(mentions(&rec, "corrupt record"), "{:?}", rec.warnings);
    assert_eq!(rec.bindings.len(), 1, "definitions untouched");
}

#[test]
fn truncated_segment_keeps_the_prefix_and_is_repaired() {
    let dir = TempDir::new("trunc-seg");
    let ids = populate(&dir);
    let seg = path(&dir, "msgs.");
    let len = std::fs::metadata(&seg).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 5)
        .expect("truncate");
    let rec = reopen(&dir);
    assert_eq!(held(&rec), ids[3..9].to_vec());
    assert!(mentions(&rec, "torn"), "{:?}", rec.warnings);
    let rec = reopen(&dir);
    assert!(
        rec.warnings.is_empty(),
        "tail was cut on the first open: {:?}",
        rec.warnings
    );
    assert_eq!(held(&rec), ids[3..9].to_vec());
}

#[test]
fn missing_acks_file_redelivers_rather_than_loses() {
    let dir = TempDir::new("no-acks");
    let ids = populate(&dir);
    std::fs::remove_file(path(&dir, "acks.")).expect("rm");
    let rec = reopen(&dir);
    assert_eq!(
        held(&rec),
        ids,
        "acked messages come back; nothing unacked is lost"
    );
}

#[test]
fn zero_length_files_are_handled() {
    let dir = TempDir::new("zero");
    let ids = populate(&dir);
    for name in ["msgs.0000000099", "acks.0000000098", "defs.log.tmp"] {
        std::fs::File::create(dir.path().join(name)).expect("create");
    }
    let rec = reopen(&dir);
    assert_eq!(held(&rec), ids[3..].to_vec());
    assert!(mentions(&rec, "msgs.0000000099"), "{:?}", rec.warnings);
    // A zero-length definitions log with segments present: messages are kept
    // on disk (unowned) rather than deleted, and the store still opens.
    std::fs::File::create(dir.path().join("defs.log")).expect("truncate defs");
    let rec = reopen(&dir);
    assert!(
        rec.queues.is_empty() && mentions(&rec, "defs.log"),
        "{:?}",
        rec.warnings
    );
    assert!(path(&dir, "msgs.").exists(), "segment kept for repair");
}

#[test]
fn garbage_appended_is_cut_off() {
    let dir = TempDir::new("garbage");
    let ids = populate(&dir);
    for prefix in ["msgs.", "acks.", "defs.log"] {
        let mut f = OpenOptions::new()
            .append(true)
            .open(path(&dir, prefix))
            .expect("open");
        // A frame prefix claiming ~4 GiB, then noise: must not be allocated.
        f.write_all(&[0xf0, 0xff, 0xff, 0xff, 1, 2, 3, 4, 9, 9, 9])
            .expect("append");
    }
    let rec = reopen(&dir);
    assert_eq!(held(&rec), ids[3..].to_vec());
    assert_eq!(rec.bindings.len(), 1);
    assert_eq!(rec.warnings.len(), 3, "{:?}", rec.warnings);
}

#[test]
fn flipped_byte_in_acks_file_redelivers_one_message() {
    let dir = TempDir::new("flip-acks");
    let ids = populate(&dir);
    let acks = path(&dir, "acks.");
    let mut bytes = std::fs::read(&acks).expect("read");
    // Header 32 bytes, then 25-byte release frames; damage the second one.
    bytes[32 + 25 + 12] ^= 1;
    std::fs::write(&acks, &bytes).expect("write");
    let rec = reopen(&dir);
    let mut expect = vec![ids[1]];
    expect.extend_from_slice(&ids[3..]);
    assert_eq!(held(&rec), expect);
    assert!(mentions(&rec, "acks."), "{:?}", rec.warnings);
}

#[test]
fn damaged_header_sets_the_file_aside() {
    let dir = TempDir::new("header");
    populate(&dir);
    let seg = path(&dir, "msgs.");
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[9] ^= 0xff; // version field
    std::fs::write(&seg, &bytes).expect("write");
    let rec = reopen(&dir);
    assert!(held(&rec).is_empty());
    assert!(mentions(&rec, ".corrupt"), "{:?}", rec.warnings);
    assert!(dir
        .path()
        .join(format!(
            "{}.corrupt",
            seg.file_name().and_then(|n| n.to_str()).unwrap_or("")
        ))
        .exists());
    assert_eq!(rec.queues.len(), 1, "definitions kept");
}

#[test]
fn flipped_byte_in_definitions_drops_one_definition_and_keeps_segments() {
    let dir = TempDir::new("flip-defs");
    let ids = populate(&dir);
    let defs = path(&dir, "defs.log");
    let mut bytes = std::fs::read(&defs).expect("read");
    let at = bytes
        .windows(1)
        .rposition(|w| w == b"k")
        .expect("binding key");
    bytes[at] ^= 0x01;
    std::fs::write(&defs, &bytes).expect("write");
    let rec = reopen(&dir);
    assert!(rec.bindings.is_empty(), "damaged binding dropped");
    assert_eq!(held(&rec), ids[3..].to_vec());
    assert!(mentions(&rec, "defs.log"), "{:?}", rec.warnings);
}
