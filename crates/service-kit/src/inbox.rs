//! An idempotent-consumer inbox: the ids of processed messages, kept in an append-only file on
//! local disk (one `unix_ms id` line each, fsynced before the delivery is acked), bounded by count
//! and age, and compacted when dead lines outnumber live ones. Ids being processed right now are
//! claimed in memory, so a duplicate that arrives while the first copy is still in its handler is
//! not processed beside it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{KitError, Result};
use crate::message::now_millis;

/// Dead lines tolerated on top of the live ones before the file is rewritten.
const COMPACT_SLACK_LINES: usize = 1024;

/// Inbox bounds.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// The file.
    pub path: PathBuf,
    /// Ids remembered at most (the oldest are forgotten first).
    pub max_ids: usize,
    /// Ids older than this are forgotten.
    pub max_age: Duration,
}

/// Mutable inbox state.
struct State {
    /// The append handle.
    file: File,
    /// id → Unix ms recorded.
    ids: HashMap<String, u64>,
    /// Ids in recording order (oldest first), for eviction.
    order: VecDeque<(u64, String)>,
    /// Lines in the file (live and dead).
    file_lines: usize,
    /// Ids claimed by a handler now (at most the consumers' concurrency: a claim ends with
    /// `commit` or `release`).
    claimed: HashSet<String>,
}

/// What [`Inbox::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not processed and not in progress: the caller owns it until `commit` or `release`.
    Fresh,
    /// Processed already (a duplicate): ack it without processing.
    Seen,
    /// Another copy is in a handler now: give this one back for later.
    Busy,
}

/// The inbox; share it with `Arc`.
pub struct Inbox {
    /// Bounds.
    cfg: InboxConfig,
    /// State behind a lock (commits are serialised anyway by the fsync).
    state: Mutex<State>,
}

impl Inbox {
    /// Opens (or creates) the inbox file and loads the ids still within bounds.
    pub fn open(cfg: InboxConfig) -> Result<Inbox> {
        if let Some(dir) = cfg.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut order = VecDeque::new();
        let mut file_lines = 0;
        if let Ok(f) = File::open(&cfg.path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                file_lines += 1;
                if let Some((ts, id)) = line.split_once(' ') {
                    if let Ok(ts) = ts.parse::<u64>() {
                        order.push_back((ts, id.to_owned()));
                    }
                }
            }
        }
        let ids = order.iter().map(|(t, i)| (i.clone(), *t)).collect();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.path)?;
        let inbox = Inbox {
            state: Mutex::new(State {
                file,
                ids,
                order,
                file_lines,
                claimed: HashSet::new(),
            }),
            cfg,
        };
        {
            let mut st = inbox.lock()?;
            inbox.evict(&mut st, now_millis());
            inbox.maybe_compact(&mut st)?;
        }
        Ok(inbox)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| KitError::Config("inbox lock poisoned".into()))
    }

    /// True if `id` was processed already.
    pub fn seen(&self, id: &str) -> Result<bool> {
        Ok(self.lock()?.ids.contains_key(id))
    }

    /// Claims `id` for processing unless it was processed or is being processed.
    pub fn claim(&self, id: &str) -> Result<Claim> {
        let mut st = self.lock()?;
        if st.ids.contains_key(id) {
            return Ok(Claim::Seen);
        }
        if !st.claimed.insert(id.to_owned()) {
            return Ok(Claim::Busy);
        }
        Ok(Claim::Fresh)
    }

    /// Ends a claim without recording the id (the handler did not finish it: retry, requeue, ...).
    pub fn release(&self, id: &str) {
        if let Ok(mut st) = self.lock() {
            st.claimed.remove(id);
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.lock().map(|s| s.ids.len()).unwrap_or(0)
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `id` durably (written and fsynced when this returns) and ends its claim.
    pub fn commit(&self, id: &str) -> Result<()> {
        if id.contains('\n') {
            return Err(KitError::Config("message id with a newline".into()));
        }
        let now = now_millis();
        let mut st = self.lock()?;
        st.claimed.remove(id);
        if st.ids.contains_key(id) {
            return Ok(());
        }
        writeln!(st.file, "{now} {id}")?;
        st.file.sync_data()?;
        st.file_lines += 1;
        st.ids.insert(id.to_owned(), now);
        st.order.push_back((now, id.to_owned()));
        self.evict(&mut st, now);
        self.maybe_compact(&mut st)
    }

    fn evict(&self, st: &mut State, now: u64) {
        let max_age_ms = self.cfg.max_age.as_millis() as u64;
        while let Some((ts, _)) = st.order.front() {
            let too_many = st.order.len() > self.cfg.max_ids;
            let too_old = now.saturating_sub(*ts) > max_age_ms;
            if !(too_many || too_old) {
                break;
            }
            if let Some((ts, id)) = st.order.pop_front() {
                // Only forget the id if this entry is the live one.
                if st.ids.get(&id) == Some(&ts) {
                    st.ids.remove(&id);
                }
            }
        }
    }

    fn maybe_compact(&self, st: &mut State) -> Result<()> {
        if st.file_lines <= st.ids.len() * 2 + COMPACT_SLACK_LINES {
            return Ok(());
        }
        let tmp = tmp_path(&self.cfg.path);
        {
            let mut f = File::create(&tmp)?;
            let mut buf = String::new();
            for (ts, id) in &st.order {
                if st.ids.get(id) == Some(ts) {
                    buf.push_str(&format!("{ts} {id}\n"));
                }
            }
            f.write_all(buf.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.cfg.path)?;
        st.file = OpenOptions::new().append(true).open(&self.cfg.path)?;
        st.file_lines = st.ids.len();
        Ok(())
    }
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".compact");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, max_ids: usize) -> InboxConfig {
        let path = std::env::temp_dir().join(format!(
            "kit-inbox-{name}-{}-{}",
            std::process::id(),
            now_millis()
        ));
        InboxConfig {
            path,
            max_ids,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn survives_reopen_and_stays_bounded_with_compaction() {
        let c = cfg("bound", 10);
        let inbox = Inbox::open(c.clone()).unwrap();
        for i in 0..1200 {
            inbox.commit(&format!("m{i}")).unwrap();
        }
        assert_eq!(inbox.len(), 10);
        assert!(inbox.seen("m1199").unwrap());
        assert!(!inbox.seen("m0").unwrap());
        drop(inbox);
        let lines = std::fs::read_to_string(&c.path).unwrap().lines().count();
        assert!(
            lines <= 10 * 2 + COMPACT_SLACK_LINES + 1,
            "compacted: {lines}"
        );
        let again = Inbox::open(c.clone()).unwrap();
        assert!(again.seen("m1195").unwrap());
        assert!(!again.seen("m5").unwrap());
        let _ = std::fs::remove_file(&c.path);
    }

    #[test]
    fn a_claimed_id_is_busy_until_committed_or_released() {
        let c = cfg("claim", 100);
        let inbox = Inbox::open(c.clone()).unwrap();
        assert_eq!(inbox.claim("a").unwrap(), Claim::Fresh);
        assert_eq!(inbox.claim("a").unwrap(), Claim::Busy);
        inbox.release("a");
        assert_eq!(inbox.claim("a").unwrap(), Claim::Fresh);
        inbox.commit("a").unwrap();
        assert_eq!(inbox.claim("a").unwrap(), Claim::Seen);
        let _ = std::fs::remove_file(&c.path);
    }

    #[test]
    fn old_ids_are_forgotten() {
        let mut c = cfg("age", 100);
        std::fs::write(&c.path, format!("1 ancient\n{} fresh\n", now_millis())).unwrap();
        c.max_age = Duration::from_secs(60);
        let inbox = Inbox::open(c.clone()).unwrap();
        assert!(!inbox.seen("ancient").unwrap());
        assert!(inbox.seen("fresh").unwrap());
        let _ = std::fs::remove_file(&c.path);
    }
}
