//! Reading the data folder at open: rebuild definitions and queue contents,
//! cut torn tails, drop settled segments and rewrite the definitions log as a
//! compact snapshot. Nothing here ever panics on disk data; everything dropped
//! is reported in the warnings `open` returns.

use std::collections::{BTreeMap, BTreeSet};

use broker_core::persist::{
    BindingDef, ExchangeDef, MessageId, PersistError, QueueDef, RecoveredDefs, RestoreSink,
    StoredAt,
};

use broker_core::access_state::AccessState;

use crate::backend::Backend;
use crate::format::{self, FileKind, Frame};
use crate::index::{Index, Slot};
use crate::record::{self, QueueId, Record};
use crate::{io_err, StoreConfig};

/// The definitions as of the end of the log.
#[derive(Default)]
pub(crate) struct Defs {
    pub exchanges: BTreeMap<(String, String), ExchangeDef>,
    pub queues: BTreeMap<QueueId, QueueDef>,
    /// Keyed by the binding's encoded bytes, which identify it exactly.
    pub bindings: BTreeMap<Vec<u8>, BindingDef>,
    pub next_queue_id: QueueId,
    pub next_message_id: MessageId,
    /// Users, vhosts, permissions, limits (version 2 records).
    pub access: AccessState,
}

impl Defs {
    /// Applies a definitions record; false if `rec` is not one.
    fn apply(&mut self, rec: Record) -> bool {
        match rec {
            Record::Meta {
                next_queue_id,
                next_message_id,
            } => {
                self.next_queue_id = self.next_queue_id.max(next_queue_id);
                self.next_message_id = self.next_message_id.max(next_message_id);
            }
            Record::PutExchange(d) => {
                self.exchanges.insert((d.vhost.clone(), d.name.clone()), d);
            }
            Record::DeleteExchange { vhost, name } => {
                self.bindings.retain(|_, b| {
                    b.vhost != vhost
                        || (b.source != name && (b.destination_is_queue || b.destination != name))
                });
                self.exchanges.remove(&(vhost, name));
            }
            Record::PutQueue { id, def } => {
                self.next_queue_id = self.next_queue_id.max(id.saturating_add(1));
                self.queues
                    .retain(|_, q| q.vhost != def.vhost || q.name != def.name);
                self.queues.insert(id, def);
            }
            Record::DeleteQueue { id } => {
                self.next_queue_id = self.next_queue_id.max(id.saturating_add(1));
                if let Some(q) = self.queues.remove(&id) {
                    self.bindings.retain(|_, b| {
                        b.vhost != q.vhost || !b.destination_is_queue || b.destination != q.name
                    });
                }
            }
            Record::PutBinding(b) => {
                self.bindings.insert(binding_key(&b), b);
            }
            Record::DeleteBinding(b) => {
                self.bindings.remove(&binding_key(&b));
            }
            Record::Access(a) => self.access.apply(a),
            Record::Message | Record::Release { .. } => return false,
        }
        true
    }

    /// Forgets durable exclusive queues and their bindings.
    fn drop_exclusive_queues(&mut self) {
        let gone: Vec<QueueDef> = self
            .queues
            .values()
            .filter(|q| q.exclusive)
            .cloned()
            .collect();
        self.queues.retain(|_, q| !q.exclusive);
        for q in gone {
            self.bindings.retain(|_, b| {
                b.vhost != q.vhost || !b.destination_is_queue || b.destination != q.name
            });
        }
    }

    /// The whole `defs.log` content for this state: header, Meta, then one
    /// put record per live exchange, queue and binding.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = format::encode_header(format::MAGIC_DEFS, 0).to_vec();
        format::append_frame(&mut out, |o| {
            record::encode_meta(o, self.next_queue_id, self.next_message_id)
        });
        for d in self.exchanges.values() {
            format::append_frame(&mut out, |o| record::encode_exchange(o, d));
        }
        for (id, d) in &self.queues {
            format::append_frame(&mut out, |o| record::encode_queue(o, *id, d));
        }
        for d in self.bindings.values() {
            format::append_frame(&mut out, |o| record::encode_binding(o, d, false));
        }
        for a in self.access.records() {
            format::append_frame(&mut out, |o| crate::access_record::encode_access(o, &a));
        }
        out
    }
}

fn binding_key(b: &BindingDef) -> Vec<u8> {
    let mut k = Vec::new();
    record::encode_binding(&mut k, b, false);
    k
}

/// Everything `open` learned, for the new `FileStore`.
pub(crate) struct Recovery {
    pub defs: Defs,
    /// Live messages, with the slot of every recovered queue assigned.
    pub index: Index,
    /// Number for the next segment to create.
    pub next_segment: u32,
    pub warnings: Vec<String>,
}

/// Outcome of scanning one file's records.
enum Scan {
    /// The header's value, the length of the valid prefix of the file, and
    /// whether records before that point had to be skipped.
    Ok {
        value: u64,
        valid_len: usize,
        skipped: bool,
    },
    /// The header is unusable (reason); the file is set aside.
    BadHeader(String),
    /// Shorter than a header: a file whose creation was cut short.
    Empty,
}

/// Walks the frames of `buf`, handing each decoded record to `f`. A bad frame
/// followed by a valid one is skipped (bit rot); a bad frame with nothing
/// valid after it is a torn tail and ends the valid prefix.
/// `f` gets each valid frame's body and offset and says whether the body
/// decoded.
fn scan(
    name: &str,
    buf: &[u8],
    magic: [u8; 8],
    cfg: &StoreConfig,
    warnings: &mut Vec<String>,
    mut f: impl FnMut(&[u8], usize, &mut Vec<String>) -> bool,
) -> Scan {
    if buf.len() < format::HEADER_SIZE_BYTES {
        return Scan::Empty;
    }
    let value = match format::decode_header(buf, magic) {
        Ok(v) => v,
        Err(e) => return Scan::BadHeader(e),
    };
    let max = cfg.record_size_max_bytes;
    let mut pos = format::HEADER_SIZE_BYTES;
    let mut skipped = false;
    while pos < buf.len() {
        match format::read_frame(buf, pos, max) {
            Frame::Valid { body, next } => {
                if !f(body, pos, warnings) {
                    skipped = true;
                    warnings.push(format!(
                        "{name}: undecodable record at offset {pos} skipped"
                    ));
                }
                pos = next;
            }
            Frame::Invalid => match format::resync(buf, pos, max) {
                Some(next) => {
                    skipped = true;
                    warnings.push(format!(
                        "{name}: corrupt record at offset {pos} ({} bytes) skipped",
                        next - pos
                    ));
                    pos = next;
                }
                None => {
                    warnings.push(format!(
                        "{name}: torn or corrupt tail at offset {pos} ({} bytes) truncated",
                        buf.len() - pos
                    ));
                    return Scan::Ok {
                        value,
                        valid_len: pos,
                        skipped,
                    };
                }
            },
        }
    }
    Scan::Ok {
        value,
        valid_len: buf.len(),
        skipped,
    }
}

/// Reads and repairs the folder, streaming definitions and then every live
/// message (in id order) into `sink`. See `docs/storage.md`, "Recovery".
pub(crate) fn recover(
    b: &dyn Backend,
    cfg: &StoreConfig,
    sink: &mut dyn RestoreSink,
) -> Result<Recovery, PersistError> {
    let mut warnings = Vec::new();
    let mut segment_nums = BTreeSet::new();
    let mut acks_nums = BTreeSet::new();
    let mut has_defs = false;
    for name in b.list().map_err(io_err)? {
        match format::classify(&name) {
            FileKind::Defs => has_defs = true,
            // A snapshot that was never renamed into place: the old log is authoritative.
            FileKind::DefsTmp => b.remove(&name).map_err(io_err)?,
            FileKind::Segment(n) => drop(segment_nums.insert(n)),
            FileKind::Acks(n) => drop(acks_nums.insert(n)),
            FileKind::Other => {}
        }
    }
    let next_segment = segment_nums.last().map_or(1, |n| n.saturating_add(1));

    // Definitions. Any doubt about them disables deleting settled segments
    // below, since "settled" would then only mean "its queue is unknown".
    let mut defs = Defs::default();
    let mut defs_trusted = true;
    if has_defs {
        let buf = b.read(format::DEFS_FILE).map_err(io_err)?;
        let scanned = scan(
            format::DEFS_FILE,
            &buf,
            format::MAGIC_DEFS,
            cfg,
            &mut warnings,
            |body, _, w| {
                let Some(rec) = record::decode(body) else {
                    return false;
                };
                if !defs.apply(rec) {
                    w.push(format!(
                        "{}: message record in definitions log ignored",
                        format::DEFS_FILE
                    ));
                }
                true
            },
        );
        match scanned {
            Scan::Ok { skipped, .. } => defs_trusted = !skipped,
            Scan::Empty => {
                defs_trusted = segment_nums.is_empty();
                warnings.push(format!(
                    "{}: shorter than a header, no definitions",
                    format::DEFS_FILE
                ));
            }
            Scan::BadHeader(e) => {
                defs_trusted = false;
                set_aside(b, format::DEFS_FILE, &e, &mut warnings)?;
            }
        }
    } else if !segment_nums.is_empty() {
        defs_trusted = false;
        warnings.push(format!(
            "{} missing; message segments kept but unowned",
            format::DEFS_FILE
        ));
    }
    // Their owner connections are gone: RabbitMQ deletes durable exclusive
    // queues at startup, and so do we (the snapshot below leaves them out,
    // which also releases their messages).
    defs.drop_exclusive_queues();

    // Slot i is the i-th queue handed to the sink.
    let mut index = Index::default();
    for id in defs.queues.keys() {
        index.slot(*id);
    }
    sink.definitions(RecoveredDefs {
        exchanges: defs.exchanges.values().cloned().collect(),
        queues: defs.queues.values().cloned().collect(),
        bindings: defs.bindings.values().cloned().collect(),
        access: defs.access.clone(),
    });

    let mut messages = 0u64;
    let mut slots: Vec<Slot> = Vec::new();
    for &n in &segment_nums {
        let (seg_name, acks_name) = (format::segment_file(n), format::acks_file(n));
        let mut buf = b.read_mapped(&seg_name).map_err(io_err)?;
        // Frame offsets of the messages indexed from this segment, in order.
        let mut offsets: Vec<usize> = Vec::new();
        let mut max_id = None::<MessageId>;
        let scanned = scan(
            &seg_name,
            &buf,
            format::MAGIC_SEGMENT,
            cfg,
            &mut warnings,
            |body, pos, w| {
                let Some(m) = record::decode_message(body) else {
                    if record::decode(body).is_some() {
                        w.push(format!("{seg_name}: unexpected record at offset {pos}"));
                        return true;
                    }
                    return false;
                };
                max_id = max_id.max(Some(m.id));
                slots.clear();
                slots.extend(m.queues().filter_map(|q| index.slot_of(q)));
                slots.sort_unstable();
                slots.dedup();
                if slots.is_empty() {
                    return true;
                }
                if !index.fits(n, m.id) {
                    // Ids only grow within a segment; anything else is damage.
                    return false;
                }
                index.push(n, m.id, &slots, false);
                offsets.push(pos);
                true
            },
        );
        let seg_damaged = match scanned {
            Scan::Ok {
                value,
                valid_len,
                skipped,
            } => {
                defs.next_message_id = defs.next_message_id.max(value);
                let file_len = buf.len();
                if valid_len < file_len {
                    // Unmap before shrinking the file, then map what is left.
                    drop(buf);
                    truncate_tail(b, &seg_name, file_len, valid_len)?;
                    buf = b.read_mapped(&seg_name).map_err(io_err)?;
                } else {
                    truncate_tail(b, &seg_name, file_len, valid_len)?;
                }
                skipped
            }
            Scan::Empty => {
                warnings.push(format!("{seg_name}: shorter than a header, removed"));
                b.remove(&seg_name).map_err(io_err)?;
                index.remove_segment(n);
                continue;
            }
            Scan::BadHeader(e) => {
                set_aside(b, &seg_name, &e, &mut warnings)?;
                if acks_nums.remove(&n) {
                    set_aside(b, &acks_name, "its segment was set aside", &mut warnings)?;
                }
                index.remove_segment(n);
                continue;
            }
        };
        if let Some(id) = max_id {
            defs.next_message_id = defs.next_message_id.max(id.saturating_add(1));
        }
        let has_acks = acks_nums.remove(&n) && read_acks(b, cfg, n, &mut index, &mut warnings)?;
        if let Some(seg) = index.segment_mut(n) {
            seg.has_acks = has_acks;
        }
        let live = index.segment(n).map_or(0, |s| s.live);
        // A segment with a skipped record is kept for inspection even when
        // everything readable in it is settled.
        if live == 0 && defs_trusted && !seg_damaged {
            // Every message here is settled: drop the segment, then its acks
            // (in that order, each made durable, so acks never vanish first).
            drop(buf);
            index.remove_segment(n);
            b.remove(&seg_name).map_err(io_err)?;
            if has_acks {
                b.sync_dir().map_err(io_err)?;
                b.remove(&acks_name).map_err(io_err)?;
            }
            continue;
        }
        // Stream this segment's live messages, then let its mapping go.
        index.for_each_live(n, |id, pos, holders| {
            let Some(&off) = offsets.get(pos) else {
                return;
            };
            let Some(v) = format::frame_body(&buf, off).and_then(record::decode_message) else {
                return;
            };
            // The segment record stays the message's one copy (the sink
            // reads it back through `read_message`), unless its offset
            // cannot be named.
            match u32::try_from(off) {
                Ok(offset) => {
                    let at = StoredAt { segment: n, offset };
                    sink.stored_message(id, holders, &v.msg, at, v.due_ms);
                }
                Err(_) => match v.due_ms {
                    Some(due) => sink.timed_message(id, holders, &v.msg, due),
                    None => sink.message(id, holders, &v.msg),
                },
            }
            messages += 1;
        });
        index.seal(n);
    }
    // Acks whose segment is gone (a crash between the two removals).
    for n in acks_nums {
        b.remove(&format::acks_file(n)).map_err(io_err)?;
    }

    // Compact the definitions: write a snapshot aside, make it durable, then
    // atomically rename it over the log. On a full disk the reserve file is
    // spent on it (the broker must start on a full disk, with the disk alarm
    // raised), then it is tried once more.
    let snapshot = defs.snapshot();
    if let Err(e) = write_defs_snapshot(b, &snapshot) {
        if !crate::syncer::is_disk_full(&e) {
            return Err(io_err(e));
        }
        let _ = b.remove(format::DEFS_TMP_FILE);
        let _ = b.remove(crate::syncer::RESERVE_FILE);
        warnings.push(
            "disk full while compacting the definitions log: the reserve file was spent on it"
                .to_string(),
        );
        write_defs_snapshot(b, &snapshot).map_err(io_err)?;
    }
    // The caller logs `warnings`; here only a summary, to avoid doubling them.
    tracing::info!(
        messages,
        segments = segment_nums.len(),
        warnings = warnings.len(),
        "store recovered"
    );
    Ok(Recovery {
        defs,
        index,
        next_segment,
        warnings,
    })
}

/// Applies segment `n`'s releases to `index`. Returns whether the file is kept.
fn read_acks(
    b: &dyn Backend,
    cfg: &StoreConfig,
    n: u32,
    index: &mut Index,
    warnings: &mut Vec<String>,
) -> Result<bool, PersistError> {
    let name = format::acks_file(n);
    let buf = b.read(&name).map_err(io_err)?;
    let scanned = scan(
        &name,
        &buf,
        format::MAGIC_ACKS,
        cfg,
        warnings,
        |body, pos, w| match record::decode(body) {
            Some(Record::Release { queue, id }) => {
                if let Some(slot) = index.slot_of(queue) {
                    index.release(slot, id);
                }
                true
            }
            Some(_) => {
                w.push(format!("{name}: unexpected record at offset {pos}"));
                true
            }
            None => false,
        },
    );
    match scanned {
        Scan::Ok { valid_len, .. } => {
            truncate_tail(b, &name, buf.len(), valid_len)?;
            Ok(true)
        }
        Scan::Empty => {
            b.remove(&name).map_err(io_err)?;
            Ok(false)
        }
        Scan::BadHeader(e) => {
            set_aside(b, &name, &e, warnings)?;
            Ok(false)
        }
    }
}

/// Cuts a torn tail so later appends follow valid records, and makes the
/// file's bytes durable, so what recovery returned survives a later crash.
fn truncate_tail(
    b: &dyn Backend,
    name: &str,
    file_len: usize,
    valid_len: usize,
) -> Result<(), PersistError> {
    if valid_len < file_len {
        b.truncate(name, valid_len as u64).map_err(io_err)?;
    }
    b.sync(name).map_err(io_err)
}

/// Renames an unreadable file to `<name>.corrupt`: never destroy what we
/// cannot understand.
fn set_aside(
    b: &dyn Backend,
    name: &str,
    why: &str,
    warnings: &mut Vec<String>,
) -> Result<(), PersistError> {
    warnings.push(format!(
        "{name}: {why}; renamed to {name}{}",
        format::CORRUPT_SUFFIX
    ));
    b.rename(name, &format!("{name}{}", format::CORRUPT_SUFFIX))
        .map_err(io_err)
}

/// Writes `snapshot` as the new definitions log (aside, synced, renamed over
/// the old one, folder synced).
fn write_defs_snapshot(b: &dyn Backend, snapshot: &[u8]) -> std::io::Result<()> {
    b.create(format::DEFS_TMP_FILE)?;
    b.append(format::DEFS_TMP_FILE, snapshot)?;
    b.sync(format::DEFS_TMP_FILE)?;
    b.rename(format::DEFS_TMP_FILE, format::DEFS_FILE)?;
    b.sync_dir()
}
