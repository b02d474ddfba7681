//! The benchmark's ledger (only with `--ledger-dir`): one line per accepted registration
//! (`accepted.log`: `A user_id accepted_at_us`) and one per welcome mail sent
//! (`sent.<pid>.log`: `S user_id accepted_at_us sent_at_us`), appended with one `write` each so a
//! line survives a SIGKILL of the process (it is in the kernel's page cache). The benchmark
//! counts per user id from these files: accepted ids never sent are lost, ids sent twice are
//! duplicates — across a killed and restarted worker, whose metrics start again from zero.
//!
//! The simulated mail dependency stands for an external service: the sent ledger is what that
//! service would have seen, so it is written right after the mail call succeeds, before the
//! inbox commit and the ack (a kill in between is a real duplicate mail).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use parking_lot::Mutex;

use crate::model::now_micros;

/// Longest ledger line, bytes (an id of the kit's `new_id` is 32 hex digits; two numbers).
const LEDGER_LINE_BYTES_MAX: usize = 128;

/// The two append-only files (either may be absent: a process without the API writes no
/// `accepted.log`).
#[derive(Default)]
pub struct Ledger {
    /// `accepted.log`, if this process runs the API.
    accepted: Option<Mutex<File>>,
    /// `sent.<pid>.log`, if this process sends mails.
    sent: Option<Mutex<File>>,
}

fn open(path: &Path) -> anyhow::Result<Mutex<File>> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening ledger {}", path.display()))?;
    Ok(Mutex::new(f))
}

impl Ledger {
    /// No ledger (the default: nothing is written).
    pub fn off() -> Ledger {
        Ledger::default()
    }

    /// Ledger files in `dir`: `accepted.log` if `api`, `sent.<pid>.log` if `sends`.
    pub fn open(dir: &Path, api: bool, sends: bool) -> anyhow::Result<Ledger> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        let sent_name = format!("sent.{}.log", std::process::id());
        Ok(Ledger {
            accepted: if api {
                Some(open(&dir.join("accepted.log"))?)
            } else {
                None
            },
            sent: if sends {
                Some(open(&dir.join(sent_name))?)
            } else {
                None
            },
        })
    }

    /// Records an accepted registration (after its publish succeeded).
    pub fn accepted(&self, user_id: &str, accepted_at_us: u64) {
        if let Some(f) = &self.accepted {
            append(f, format_args!("A {user_id} {accepted_at_us}\n"));
        }
    }

    /// Records a welcome mail sent.
    pub fn sent(&self, user_id: &str, accepted_at_us: u64) {
        if let Some(f) = &self.sent {
            append(
                f,
                format_args!("S {user_id} {accepted_at_us} {}\n", now_micros()),
            );
        }
    }
}

/// One `write` of the whole line (the files are opened for append, so lines never interleave).
fn append(f: &Mutex<File>, line: std::fmt::Arguments<'_>) {
    let mut buf = Vec::with_capacity(LEDGER_LINE_BYTES_MAX);
    if buf.write_fmt(line).is_err() || buf.len() > LEDGER_LINE_BYTES_MAX {
        tracing::warn!("ledger line too long, not written");
        return;
    }
    if let Err(e) = f.lock().write_all(&buf) {
        tracing::warn!(error = %e, "ledger write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_per_id_and_off_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("refsvc-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Ledger::off().accepted("x", 1);
        let l = Ledger::open(&dir, true, true).unwrap();
        l.accepted("u1", 10);
        l.sent("u1", 10);
        l.sent("u1", 10);
        let acc = std::fs::read_to_string(dir.join("accepted.log")).unwrap();
        assert_eq!(acc, "A u1 10\n");
        let sent =
            std::fs::read_to_string(dir.join(format!("sent.{}.log", std::process::id()))).unwrap();
        let lines: Vec<_> = sent.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("S u1 10 "), "{sent}");
        let worker_only = dir.join("w");
        let w = Ledger::open(&worker_only, false, true).unwrap();
        w.accepted("u2", 1);
        assert!(!worker_only.join("accepted.log").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
