//! A crash-simulating [`Backend`] for tests.
//!
//! Each file (inode) keeps a *written* image (what reads see now) and a
//! *synced* image (what survives a power cut). The folder keeps a *current*
//! name table and a *durable* one updated only by `sync_dir`, so a file
//! created, renamed or removed without a later directory fsync is undone by a
//! power cut, as on a real file system. A cut may also keep a prefix of the
//! unsynced bytes appended to a file (a torn write).
//!
//! Fault injection: after `fail_after(n)`, the n+1-th mutating operation and
//! every one after it fail with an I/O error (EIO: a disk that went away),
//! until a power cut produces a fresh backend. `set_capacity_bytes` models a
//! small disk instead: a create, append or reserve that would take the bytes
//! held by named files past the capacity fails with ENOSPC
//! (`ErrorKind::StorageFull`), while truncation and removal (which free
//! space) keep working.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Mutex;

use crate::backend::Backend;
use crate::lock;

#[derive(Clone, Default)]
struct Inode {
    /// What reads return now.
    written: Vec<u8>,
    /// What survives a power cut.
    synced: Vec<u8>,
}

#[derive(Clone, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Name table as the running process sees it.
    names: BTreeMap<String, u64>,
    /// Name table as of the last directory fsync.
    durable_names: BTreeMap<String, u64>,
    /// Mutating operations left before injected failures start.
    fail_countdown: Option<u64>,
    /// Mutating operations performed so far.
    ops: u64,
    /// Disk size: growth past this many bytes (summed over named files)
    /// fails with ENOSPC. `None` = unlimited.
    capacity_bytes: Option<u64>,
}

/// In-memory crash simulator. See the module docs.
#[derive(Default)]
pub struct SimBackend {
    state: Mutex<State>,
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("sim: no file {name}"))
}

impl State {
    /// Counts a mutating operation and fails it if the countdown ran out.
    fn mutate(&mut self) -> io::Result<()> {
        self.ops += 1;
        match &mut self.fail_countdown {
            Some(0) => Err(io::Error::other("sim: injected I/O error")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Bytes held by the files that have a name now.
    fn used_bytes(&self) -> u64 {
        let ids: std::collections::BTreeSet<u64> = self.names.values().copied().collect();
        ids.iter()
            .filter_map(|id| self.inodes.get(id))
            .map(|i| i.written.len() as u64)
            .sum()
    }

    /// ENOSPC if growing the named files by `extra` bytes passes the capacity.
    fn grow(&self, extra: u64) -> io::Result<()> {
        match self.capacity_bytes {
            Some(cap) if self.used_bytes() + extra > cap => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "sim: no space left on device",
            )),
            _ => Ok(()),
        }
    }

    fn inode(&mut self, name: &str) -> io::Result<&mut Inode> {
        let id = *self.names.get(name).ok_or_else(|| not_found(name))?;
        self.inodes.get_mut(&id).ok_or_else(|| not_found(name))
    }
}

impl SimBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `n` more mutating operations succeed, then fails all later ones.
    pub fn fail_after(&self, n: u64) {
        lock(&self.state).fail_countdown = Some(n);
    }

    /// Stops injecting failures (a process restart on a disk that recovered).
    pub fn heal(&self) {
        lock(&self.state).fail_countdown = None;
    }

    /// Models a disk of `bytes` (`None` = unlimited); see the module docs.
    /// A power cut keeps the capacity.
    pub fn set_capacity_bytes(&self, bytes: Option<u64>) {
        lock(&self.state).capacity_bytes = bytes;
    }

    /// Bytes held by named files (what `df` would show used).
    pub fn used_bytes(&self) -> u64 {
        lock(&self.state).used_bytes()
    }

    /// Number of mutating operations performed so far.
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// A new backend holding what a power cut right now would leave behind.
    /// `torn_seed` picks how many unsynced appended bytes of each file survive
    /// (0 keeps none); the same seed always gives the same result.
    pub fn crash_copy(&self, torn_seed: u64) -> SimBackend {
        let old = lock(&self.state);
        let mut state = State {
            next_inode: old.next_inode,
            capacity_bytes: old.capacity_bytes,
            ..State::default()
        };
        state.names = old.durable_names.clone();
        state.durable_names = old.durable_names.clone();
        for id in state.names.values() {
            let Some(inode) = old.inodes.get(id) else {
                continue;
            };
            let mut kept = inode.synced.clone();
            let extra = inode
                .written
                .get(kept.len()..)
                .filter(|_| inode.written.starts_with(&inode.synced));
            if let (Some(extra), true) = (extra, torn_seed != 0) {
                // A cheap deterministic mix of seed and inode id.
                let mix = torn_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ id.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let keep = (mix >> 17) as usize % (extra.len() + 1);
                kept.extend_from_slice(&extra[..keep]);
            }
            state.inodes.insert(
                *id,
                Inode {
                    written: kept.clone(),
                    synced: kept,
                },
            );
        }
        SimBackend {
            state: Mutex::new(state),
        }
    }

    /// Test helper: overwrites bytes of a file in place, both images (bit rot).
    pub fn corrupt(&self, name: &str, offset: usize, xor: u8) -> io::Result<()> {
        let mut s = lock(&self.state);
        let inode = s.inode(name)?;
        for image in [&mut inode.written, &mut inode.synced] {
            if let Some(b) = image.get_mut(offset) {
                *b ^= xor;
            }
        }
        Ok(())
    }
}

impl Backend for SimBackend {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.state).names.keys().cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(lock(&self.state).inode(name)?.written.clone())
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(lock(&self.state).inode(name)?.written.len() as u64)
    }

    fn create(&self, name: &str) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        s.grow(0)?;
        let id = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(id, Inode::default());
        s.names.insert(name.to_string(), id);
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        if let Err(e) = s.grow(data.len() as u64) {
            // Like a real disk: what fits is written, then ENOSPC.
            let room = s.capacity_bytes.unwrap_or(0).saturating_sub(s.used_bytes());
            let fit = usize::try_from(room).unwrap_or(0).min(data.len());
            s.inode(name)?.written.extend_from_slice(&data[..fit]);
            return Err(e);
        }
        s.inode(name)?.written.extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        let inode = s.inode(name)?;
        inode.synced = inode.written.clone();
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        let inode = s.inode(name)?;
        inode.written.truncate(len as usize);
        Ok(())
    }

    fn reserve(&self, name: &str, len: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        s.grow(len)?;
        let id = s.next_inode;
        s.next_inode += 1;
        let bytes = vec![0; usize::try_from(len).unwrap_or(0)];
        s.inodes.insert(
            id,
            Inode {
                written: bytes.clone(),
                synced: bytes,
            },
        );
        s.names.insert(name.to_string(), id);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        s.names
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_string(), id);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.mutate()?;
        s.durable_names = s.names.clone();
        Ok(())
    }
}
