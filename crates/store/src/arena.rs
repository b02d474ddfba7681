//! The file-backed message arena: where queued message contents live.
//!
//! Segments are files under `<data>/arena/`, each mapped into memory
//! (`mmap`, shared). Appending a message is a memcpy into the current
//! segment; reading one is a slice of a mapping. The page cache, not the
//! heap, holds the bytes, and `maintain` tells the kernel to drop our
//! mappings' resident pages of segments other than the one being written,
//! so RSS stays small however many messages are queued (pages come back
//! from the page cache on the next read).
//!
//! Arena contents are NOT durable: the directory is wiped at startup, and
//! persistent messages are recovered from the store's own log. Space for a
//! segment is reserved with `posix_fallocate` before it is mapped, so a full
//! disk surfaces as an append error rather than a SIGBUS on a page fault.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker_core::arena::{
    decode_record, split, Arena, ArenaError, Loc, MessageView, NewMessage, SegmentRefs,
};
use memmap2::MmapMut;
use rustc_hash::FxHashMap;

/// Ticks between two passes returning resident pages to the kernel.
const MAINTAIN_EVERY_TICKS: u32 = 10;
/// Granule of the current segment's pages returned by a maintenance pass:
/// everything before the last whole one behind the write position.
const RESIDENT_TAIL_BYTES: usize = 64 * 1024;

/// Freed standard-size segments kept mapped for reuse. Writing into fresh
/// file pages costs a page fault and block allocation per 4 KiB (the 1 KiB
/// profile spent a third of its time there); a recycled segment's pages are
/// already allocated and mapped, so steady-state traffic cycles through a
/// few warm segments. Bounds the arena's idle RSS to this many segments.
const SPARE_SEGMENTS_MAX: usize = 3;

/// Spare segments untouched for this many maintenance passes (about a
/// second each) are released, so an idle broker gives their disk space
/// back: a drained or purged queue keeps only the current segment.
const SPARE_IDLE_PASSES_MAX: u32 = 2;

struct Segment {
    map: MmapMut,
    /// Bytes written so far.
    len: usize,
    /// The file behind the mapping (named after the segment that created
    /// it); None for a segment in memory (see `create_segment`).
    path: Option<PathBuf>,
}

impl Segment {
    /// Hands its resident pages back to the kernel: a file segment's stay
    /// in the page cache and fault back in; a memory segment's would be
    /// lost (zero-filled), so it keeps them.
    fn drop_pages(&self, len: usize) {
        if self.path.is_none() || len == 0 {
            return;
        }
        // SAFETY: a shared file mapping: MADV_DONTNEED only drops our
        // page-table entries; the data stays in the page cache / file
        // and is faulted back in on the next access.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, len)
        };
    }

    fn remove_file(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub struct FileArena {
    dir: PathBuf,
    segment_size_bytes: usize,
    segments: FxHashMap<u32, Segment>,
    current: u32,
    refs: SegmentRefs,
    ticks: u32,
    /// Freed segments ready for reuse (warm pages, see SPARE_SEGMENTS_MAX).
    spare: Vec<Segment>,
    /// Maintenance passes since a spare segment was last taken.
    spare_idle_passes: u32,
    /// Bytes reserved (fallocated) for segment files since open; the
    /// server's free-disk check counts them.
    reserved_bytes: Arc<AtomicU64>,
}

fn segment_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(format!("{seg:010}.seg"))
}

fn err(what: &str, e: impl std::fmt::Display) -> ArenaError {
    ArenaError(format!("{what}: {e}"))
}

impl FileArena {
    /// Opens the arena in `dir`, deleting whatever an earlier run left there.
    pub fn open(dir: &Path, segment_size_bytes: usize) -> Result<FileArena, ArenaError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| err("clearing arena dir", e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| err("creating arena dir", e))?;
        let mut a = FileArena {
            dir: dir.to_path_buf(),
            segment_size_bytes,
            segments: FxHashMap::default(),
            current: 0,
            refs: SegmentRefs::default(),
            ticks: 0,
            spare: Vec::new(),
            spare_idle_passes: 0,
            reserved_bytes: Arc::new(AtomicU64::new(0)),
        };
        a.create_segment(0, segment_size_bytes)?;
        Ok(a)
    }

    /// A counter of the bytes reserved for segment files since open.
    pub fn reserved_bytes_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.reserved_bytes)
    }

    fn create_segment(&mut self, seg: u32, size: usize) -> Result<(), ArenaError> {
        if size <= self.segment_size_bytes {
            if let Some(mut s) = self.spare.pop() {
                s.len = 0;
                self.spare_idle_passes = 0;
                self.refs.open_segment(seg);
                self.segments.insert(seg, s);
                return Ok(());
            }
        }
        let path = segment_path(&self.dir, seg);
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| err("creating arena segment", e))?;
        // SAFETY: plain syscall on a valid, open file descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
        if rc == libc::ENOSPC || rc == libc::EDQUOT {
            // A full disk must not stop the broker (a restart on a full
            // disk recovers its stubs into the arena): the segment lives
            // in memory instead, bounded by the memory alarm, while the
            // disk alarm blocks publishers.
            drop(file);
            let _ = std::fs::remove_file(&path);
            tracing::warn!(
                "message arena: no disk space for a {size}-byte segment; keeping it in memory"
            );
            let map = MmapMut::map_anon(size).map_err(|e| err("mapping arena memory", e))?;
            self.add_segment(seg, map, None);
            return Ok(());
        }
        if rc != 0 {
            let _ = std::fs::remove_file(&path);
            return Err(err(
                "reserving arena segment space",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        self.reserved_bytes
            .fetch_add(size as u64, Ordering::Relaxed);
        // SAFETY: the file is ours alone (the arena directory is private to
        // this process and wiped at start); nothing truncates it while mapped.
        let map =
            unsafe { MmapMut::map_mut(&file) }.map_err(|e| err("mapping arena segment", e))?;
        self.add_segment(seg, map, Some(path));
        Ok(())
    }

    /// Registers a new, empty segment `seg` backed by `map` (`path`: its
    /// file; None: anonymous memory).
    fn add_segment(&mut self, seg: u32, map: MmapMut, path: Option<PathBuf>) {
        self.refs.open_segment(seg);
        self.segments.insert(seg, Segment { map, len: 0, path });
    }

    fn free_if_unused(&mut self, seg: u32) {
        if seg == self.current || self.refs.count(seg) != 0 {
            return;
        }
        if let Some(s) = self.segments.remove(&seg) {
            if s.map.len() == self.segment_size_bytes
                && s.path.is_some()
                && self.spare.len() < SPARE_SEGMENTS_MAX
            {
                self.spare.push(s);
            } else {
                s.remove_file();
            }
            self.refs.trim_front(self.current);
        }
    }
}

impl Arena for FileArena {
    fn append(&mut self, msg: &NewMessage<'_>, refs: u32) -> Result<Loc, ArenaError> {
        let len = msg.record_len();
        let fits = self
            .segments
            .get(&self.current)
            .is_some_and(|s| s.len + len <= s.map.len());
        if !fits {
            let old = self.current;
            let next = old + 1;
            self.create_segment(next, self.segment_size_bytes.max(len))?;
            self.current = next;
            self.free_if_unused(old);
        }
        let seg = self
            .segments
            .get_mut(&self.current)
            .ok_or_else(|| ArenaError("current segment missing".into()))?;
        let offset = seg.len;
        msg.encode_into(&mut seg.map[offset..offset + len]);
        seg.len += len;
        self.refs.add(self.current, u64::from(refs));
        Ok((u64::from(self.current) << 32) | offset as u64)
    }

    fn get(&self, loc: Loc) -> Option<MessageView<'_>> {
        let (seg, off) = split(loc);
        let s = self.segments.get(&seg)?;
        decode_record(s.map.get(off..s.len)?)
    }

    fn release(&mut self, loc: Loc) {
        let (seg, _) = split(loc);
        if self.refs.sub(seg) {
            self.free_if_unused(seg);
        }
    }

    fn maintain(&mut self) {
        self.ticks += 1;
        if !self.ticks.is_multiple_of(MAINTAIN_EVERY_TICKS) {
            return;
        }
        self.spare_idle_passes = self.spare_idle_passes.saturating_add(1);
        if self.spare_idle_passes > SPARE_IDLE_PASSES_MAX {
            for s in self.spare.drain(..) {
                s.remove_file();
            }
        }
        // The current segment with nothing left in it starts over, so its
        // pages are reused instead of new ones being filled.
        if self.refs.count(self.current) == 0 {
            if let Some(s) = self.segments.get_mut(&self.current) {
                s.len = 0;
            }
        }
        for (seg, s) in self.segments.iter() {
            if *seg != self.current {
                s.drop_pages(s.map.len());
                continue;
            }
            // The current segment: the whole pages behind the write position
            // (the page being appended to stays mapped), so a full queue's
            // resident memory does not depend on where in a segment it ended.
            s.drop_pages(s.len / RESIDENT_TAIL_BYTES * RESIDENT_TAIL_BYTES);
        }
    }

    fn usage(&self) -> (usize, u64) {
        (
            self.segments.len() + self.spare.len(),
            self.segments.values().map(|s| s.len as u64).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_core::arena::RecordMeta;

    fn msg(body: &[u8]) -> NewMessage<'_> {
        NewMessage {
            meta: RecordMeta {
                published_ms: 1,
                expiration_ms: u64::MAX,
                store_id: 0,
                persistent: false,
            },
            exchange: "e",
            routing_key: "k",
            properties: b"",
            body,
            stored_at: None,
        }
    }

    #[test]
    fn append_read_rotate_free_and_wipe() {
        let dir = std::env::temp_dir().join(format!("warren-arena-test-{}", std::process::id()));
        let mut a = FileArena::open(&dir, 4096).unwrap();
        let mut locs = Vec::new();
        for i in 0..200u8 {
            locs.push(a.append(&msg(&[i; 100]), 1).unwrap());
        }
        assert_eq!(a.get(locs[150]).unwrap().body, &[150u8; 100][..]);
        let files_before = std::fs::read_dir(&dir).unwrap().count();
        assert!(files_before > 3);
        for l in &locs[..190] {
            a.release(*l);
        }
        a.maintain();
        let files_after = std::fs::read_dir(&dir).unwrap().count();
        assert!(files_after < files_before, "{files_after} < {files_before}");
        assert_eq!(a.get(locs[199]).unwrap().body, &[199u8; 100][..]);
        let big = a.append(&msg(&[7; 10_000]), 1).unwrap();
        assert_eq!(a.get(big).unwrap().body.len(), 10_000);
        drop(a);
        let _a = FileArena::open(&dir, 4096).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
