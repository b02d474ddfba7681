//! Durable store: the only code that touches the data folder.
//!
//! Layout (details byte for byte in `docs/storage.md`):
//! - `defs.log`: exchange/queue/binding puts and deletes; rewritten as a
//!   compact snapshot at every open.
//! - `msgs.NNNNNNNNNN`: append-only message segments; each persistent message
//!   is written once, with the ids of the queues holding it.
//! - `acks.NNNNNNNNNN`: "queue Q released message M" for messages of segment
//!   N, so a segment and its releases are deleted together once settled.
//!
//! The broker calls [`FileStore`] (a [`Persistence`]) under its state lock:
//! it only encodes records into memory. [`FileSyncer`] (a [`Syncer`]) writes
//! them and fdatasyncs outside that lock; one sync covers every record
//! appended before it (group commit).
//!
//! [`Persistence`]: broker_core::persist::Persistence
//! [`Syncer`]: broker_core::persist::Syncer

pub mod access_record;
pub mod arena;
pub mod backend;
pub mod format;
mod index;
mod io_stats;
mod reads;
pub mod record;
mod recovery;
pub mod sim;
mod store;
mod syncer;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use broker_core::persist::{PersistError, Recovered, RestoreSink};

pub use arena::FileArena;
pub use backend::{Backend, FsBackend, Mapped};
pub use io_stats::IoSnapshot;
pub use sim::SimBackend;
pub use store::FileStore;
pub use syncer::{is_disk_full, FileSyncer, RESERVE_FILE};

/// Tunables. Every limit carries its unit in its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// A segment is closed and a new one started once appending the next
    /// message would take it past this size. Smaller segments are freed
    /// sooner after their messages are settled; larger ones mean fewer files.
    /// Default 64 MiB. A single message larger than this gets a segment of
    /// its own.
    pub segment_size_bytes: u64,
    /// Largest record written or accepted on read. Larger length fields found
    /// on disk are treated as corruption, so a flipped bit can never make
    /// recovery read or allocate gigabytes. Default 512 MiB (RabbitMQ's
    /// maximum message size) plus room for the record's other fields.
    pub record_size_max_bytes: u64,
    /// Size of the `reserve` file, space set aside at open and given up on
    /// the first full disk (ENOSPC, EDQUOT) so that the records already in
    /// flight can still be made durable; the store then pauses (new
    /// persistent messages are refused) until the reserve can be allocated
    /// again. 0 = no reserve. Default 8 MiB.
    pub reserve_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            segment_size_bytes: 64 << 20,
            record_size_max_bytes: (512 << 20) + (64 << 10),
            reserve_bytes: 8 << 20,
        }
    }
}

/// Opens (creating if needed) the store in `dir`, streaming what it recovers
/// into `sink`: the definitions, then every live message in id order.
/// Returns the store, its syncer and warnings about anything dropped.
///
/// Blocking: reads every file, repairs torn tails, removes settled segments
/// and rewrites `defs.log`. Call it before the broker starts serving.
pub fn open_into(
    dir: &Path,
    config: StoreConfig,
    sink: &mut dyn RestoreSink,
) -> Result<(FileStore, Arc<FileSyncer>, Vec<String>), PersistError> {
    let backend = FsBackend::new(dir).map_err(io_err)?;
    open_with_backend_into(Arc::new(backend), config, sink)
}

/// [`open_into`] on any [`Backend`]; tests pass a [`SimBackend`].
pub fn open_with_backend_into(
    backend: Arc<dyn Backend>,
    config: StoreConfig,
    sink: &mut dyn RestoreSink,
) -> Result<(FileStore, Arc<FileSyncer>, Vec<String>), PersistError> {
    let mut recovery = recovery::recover(backend.as_ref(), &config, sink)?;
    let warnings = std::mem::take(&mut recovery.warnings);
    let shared = Arc::new(syncer::Shared::default());
    let reserve_bytes = config.reserve_bytes;
    let reserve = match reserve_bytes {
        0 => {
            // A reserve left by a run with one configured is just space.
            let _ = backend.remove(syncer::RESERVE_FILE);
            false
        }
        n => match backend.reserve(syncer::RESERVE_FILE, n) {
            Ok(()) => true,
            Err(e) if syncer::is_disk_full(&e) => false,
            Err(e) => return Err(io_err(e)),
        },
    };
    let store = FileStore::new(Arc::clone(&shared), Arc::clone(&backend), config, recovery);
    let syncer = Arc::new(FileSyncer::new(shared, backend, reserve_bytes, reserve));
    Ok((store, syncer, warnings))
}

/// [`open_into`], collecting everything recovered in memory (tests, tools).
pub fn open(
    dir: &Path,
    config: StoreConfig,
) -> Result<(FileStore, Arc<FileSyncer>, Recovered), PersistError> {
    let backend = FsBackend::new(dir).map_err(io_err)?;
    open_with_backend(Arc::new(backend), config)
}

/// [`open`] on any [`Backend`].
pub fn open_with_backend(
    backend: Arc<dyn Backend>,
    config: StoreConfig,
) -> Result<(FileStore, Arc<FileSyncer>, Recovered), PersistError> {
    let mut recovered = Recovered::default();
    let (store, syncer, warnings) = open_with_backend_into(backend, config, &mut recovered)?;
    recovered.warnings = warnings;
    Ok((store, syncer, recovered))
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent at each step, and a panicking thread must not
/// take the whole store down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn io_err(e: std::io::Error) -> PersistError {
    PersistError::Io(e.to_string())
}

/// Free space, in bytes, available to unprivileged writers on the
/// filesystem holding `dir` (statvfs `f_bavail * f_frsize`). The server
/// polls this to block publishers before the disk fills.
pub fn disk_free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` is a plain
    // C struct that statvfs fills in; we read it only on success.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}
