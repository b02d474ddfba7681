//! The storage the store runs on: a flat folder of append-only files.
//!
//! The store only ever needs these operations, so putting them behind a trait
//! lets tests swap in [`crate::sim::SimBackend`], which models exactly what a
//! power cut keeps (synced bytes and synced directory entries) and can fail
//! any operation on command.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::lock;

/// A flat folder of files. Names never contain path separators.
pub trait Backend: Send + Sync {
    /// Names of all files in the folder.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole file. Callers only do this at open, and only after checking
    /// the size with [`Backend::len`] against their own limits.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// The whole file, mapped read-only where the backend can: recovery
    /// then scans segments straight from the page cache instead of copying
    /// gigabytes into fresh heap pages. The file must not shrink while the
    /// mapping lives (recovery re-maps after cutting a torn tail).
    fn read_mapped(&self, name: &str) -> io::Result<Mapped> {
        self.read(name).map(Mapped::Owned)
    }
    /// Current length in bytes.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Creates an empty file (truncating any file of that name).
    fn create(&self, name: &str) -> io::Result<()>;
    /// Appends to the end of an existing file.
    fn append(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// fdatasync: the file's bytes (not its directory entry) become durable.
    fn sync(&self, name: &str) -> io::Result<()>;
    /// Shrinks the file to `len` bytes (only used to cut a torn tail at open).
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Creates `name` with `len` bytes of allocated space (the store's
    /// reserve, see `docs/storage.md`): fails with ENOSPC, leaving no file,
    /// when the disk cannot hold it.
    fn reserve(&self, name: &str, len: u64) -> io::Result<()> {
        self.create(name)?;
        let zeros = vec![0; usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20)];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            if let Err(e) = self.append(name, &zeros[..n as usize]) {
                let _ = self.remove(name);
                return Err(e);
            }
            left -= n;
        }
        Ok(())
    }
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// fsync of the folder: creations, renames and removals become durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// File contents from [`Backend::read_mapped`].
pub enum Mapped {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Mapped {
    /// Asks the kernel to start reading `from..to` into the page cache
    /// (`MADV_WILLNEED`, asynchronous): deliveries then copy from memory
    /// instead of page-faulting on a cold segment under the broker's lock.
    pub fn will_need(&self, from: usize, to: usize) {
        if let Mapped::Map(m) = self {
            if from < to && to <= m.len() {
                let _ = m.advise_range(memmap2::Advice::WillNeed, from, to - from);
            }
        }
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Map(m) => m,
            Mapped::Owned(v) => v,
        }
    }
}

/// Lock file guarding the folder against a second writer.
pub const LOCK_FILE: &str = "LOCK";

/// Most append handles kept open at once. Past this all are closed (a data
/// folder can hold thousands of segments and acks files; file descriptors
/// are limited). Closing is safe with unsynced data: fdatasync through a
/// later handle flushes the file, not just that handle's writes.
pub const FILE_HANDLES_MAX: usize = 64;

/// The real file system. Keeps files open for appending after first use, so
/// the steady state is one `write` and one `fdatasync` per file per sync.
pub struct FsBackend {
    /// The data folder.
    dir: PathBuf,
    /// Open append handles by file name.
    files: Mutex<HashMap<String, File>>,
    /// `LOCK`, held with an exclusive lock for our lifetime so two
    /// processes never write one folder.
    _lock: File,
}

impl FsBackend {
    /// Uses `dir`, creating it if needed. Fails if another process (or
    /// another open store in this one) holds the folder.
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        lock_file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("data folder {} is in use by another store", dir.display()),
            ),
            std::fs::TryLockError::Error(e) => e,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files: Mutex::new(HashMap::new()),
            _lock: lock_file,
        })
    }

    fn with_file<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut File) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut files = lock(&self.files);
        if !files.contains_key(name) {
            if files.len() >= FILE_HANDLES_MAX {
                files.clear();
            }
            let file = OpenOptions::new().append(true).open(self.dir.join(name))?;
            files.insert(name.to_string(), file);
        }
        match files.get_mut(name) {
            Some(file) => f(file),
            None => Err(io::Error::other("file handle vanished")),
        }
    }
}

impl Backend for FsBackend {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(self.dir.join(name))?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn read_mapped(&self, name: &str) -> io::Result<Mapped> {
        let file = File::open(self.dir.join(name))?;
        if file.metadata()?.len() == 0 {
            return Ok(Mapped::Owned(Vec::new()));
        }
        // SAFETY: the folder is ours alone (LOCK). Recovery drops its
        // mapping before it truncates a file. The store's read mappings
        // (reads.rs) only touch bytes written for good, which nothing
        // changes or cuts while the segment lives (a rollback cuts only
        // what its own batch appended past them), so the bytes read never
        // change or vanish.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        // Recovery reads each segment front to back, once.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mapped::Map(map))
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.dir.join(name))?.len())
    }

    fn create(&self, name: &str) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(self.dir.join(name))?;
        drop(file);
        lock(&self.files).remove(name);
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.with_file(name, |f| f.write_all(data))
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        self.with_file(name, |f| f.sync_data())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.with_file(name, |f| f.set_len(len))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        lock(&self.files).remove(name);
        std::fs::remove_file(self.dir.join(name))
    }

    fn reserve(&self, name: &str, len: u64) -> io::Result<()> {
        use std::os::unix::io::AsRawFd;
        let path = self.dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let len = libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX);
        // SAFETY: plain syscall on a valid, open file descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        if rc != 0 {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = lock(&self.files);
        files.remove(from);
        files.remove(to);
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}
