//! Counters shared by the hot loops, the once-a-second reporter, summary
//! statistics, a tiny JSON writer, and broker RSS from `/proc`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Totals since the start of a run; the hot loops add once per batch, not per message.
#[derive(Default, Debug)]
pub struct Counters {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub received: AtomicU64,
}

/// Per-second rates (messages per second) observed by the reporter.
#[derive(Default, Debug, Clone, Copy)]
pub struct Sample {
    pub sent: f64,
    pub confirmed: f64,
    pub received: f64,
}

/// A one-shot signal (start, stop) for every task of a run; a `watch`, so late
/// subscribers see it too.
#[derive(Clone)]
pub struct Signal(watch::Receiver<bool>);

impl Signal {
    pub fn new() -> (watch::Sender<bool>, Signal) {
        let (tx, rx) = watch::channel(false);
        (tx, Signal(rx))
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal is set (or the sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

/// Prints rates to stderr once a second until `stop`; returns one sample per full second.
pub async fn report(counters: Arc<Counters>, mut stop: Signal) -> Vec<Sample> {
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut last = snapshot(&counters);
    let mut last_at = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => return samples,
        }
        let now = snapshot(&counters);
        let dt = last_at.elapsed().as_secs_f64().max(1e-9);
        last_at = Instant::now();
        let s = Sample {
            sent: (now[0] - last[0]) as f64 / dt,
            confirmed: (now[1] - last[1]) as f64 / dt,
            received: (now[2] - last[2]) as f64 / dt,
        };
        last = now;
        eprintln!(
            "time {:>4.0}s  sent {:>10.0} msg/s  confirmed {:>10.0} msg/s  received {:>10.0} msg/s",
            start.elapsed().as_secs_f64(),
            s.sent,
            s.confirmed,
            s.received
        );
        samples.push(s);
    }
}

fn snapshot(c: &Counters) -> [u64; 3] {
    [
        c.published.load(Relaxed),
        c.confirmed.load(Relaxed) + c.nacked.load(Relaxed),
        c.received.load(Relaxed),
    ]
}

/// Median of `values` (0 for none).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted `values` (0 for none).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The epsilon keeps e.g. 99.9% of 1000 at rank 999 despite float rounding.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nanoseconds since a process-wide epoch; producers stamp bodies with it and
/// consumers (in the same process) subtract it, so no clock sync is needed.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// `(RssAnon, RssFile + RssShmem)` of `pid` in KiB: anonymous memory vs. mapped
/// file pages (warren's message arena is a file mapping and shows up in the latter).
pub fn rss_split_kib(pid: Option<u32>) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((
        field("RssAnon:")?,
        field("RssFile:")? + field("RssShmem:").unwrap_or(0),
    ))
}

/// RSS if a pid was given and readable (errors are reported, not fatal).
pub fn maybe_rss(pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    match rss_kib(pid) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("warning: cannot read RSS of pid {pid}: {e}");
            None
        }
    }
}

/// A flat JSON object built field by field (numbers and strings only).
#[derive(Default)]
pub struct Json(String);

impl Json {
    pub fn num(mut self, key: &str, v: f64) -> Json {
        let v = if v.is_finite() { v } else { 0.0 };
        self.sep(key);
        if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(self.0, "{}", v as i64);
        } else {
            let _ = write!(self.0, "{v:.3}");
        }
        self
    }

    pub fn opt(self, key: &str, v: Option<f64>) -> Json {
        match v {
            Some(v) => self.num(key, v),
            None => self,
        }
    }

    pub fn str(mut self, key: &str, v: &str) -> Json {
        self.sep(key);
        escape(&mut self.0, v);
        self
    }

    fn sep(&mut self, key: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        escape(&mut self.0, key);
        self.0.push(':');
    }

    pub fn finish(self) -> String {
        if self.0.is_empty() {
            "{}".to_string()
        } else {
            self.0 + "}"
        }
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prints the summary as the last stdout line and writes it to `path` if given.
pub fn emit(json: Json, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let s = json.finish();
    if let Some(p) = path {
        std::fs::write(p, format!("{s}\n"))?;
    }
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500);
        assert_eq!(percentile(&v, 99.9), 999);
        assert_eq!(percentile(&v, 100.0), 1000);
    }

    #[test]
    fn json_is_flat_object() {
        let j = Json::default().str("a", "x\"y").num("b", 2.0).num("c", 0.5);
        assert_eq!(j.finish(), r#"{"a":"x\"y","b":2,"c":0.500}"#);
    }
}
