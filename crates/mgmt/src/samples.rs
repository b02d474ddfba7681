//! `*_details.samples` of the overview (RabbitMQ's `lengths_age` /
//! `msg_rates_age` and their `_incr`, in seconds): the statistics history
//! (`Stats::history`, one entry per published snapshot, at most
//! `HISTORY_SAMPLES_MAX`) within the age asked, newest first, each
//! `{sample, timestamp}` with `timestamp` in ms, plus `avg` and
//! `avg_rate` over the window. The console draws its charts from these.

use serde_json::{json, Value};

use crate::http::Req;
use crate::stats::Totals;

/// Longest window accepted, seconds (RabbitMQ's longest retention: a day).
const AGE_SECONDS_MAX: u64 = 86_400;

/// A series: its key in the JSON and how to read it from the history.
type Key = (&'static str, fn(&Totals) -> u64);

/// The `{age}` window of `key` (`lengths_age`), if asked.
fn window(req: &Req, key: &str) -> Option<(u64, u64)> {
    let age: u64 = req.query.get(key)?.parse().ok()?;
    let incr_key = key.replace("_age", "_incr");
    let incr: u64 = req
        .query
        .get(&incr_key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((age.min(AGE_SECONDS_MAX), incr))
}

/// The samples of one series: entries within `age_s` of the newest, at
/// least `incr_s` apart (counted back from the newest), newest first.
fn series(hist: &[Totals], (age_s, incr_s): (u64, u64), f: fn(&Totals) -> u64) -> Value {
    let newest = hist.last().map_or(0, |t| t.at_ms);
    let from = newest.saturating_sub(age_s * 1000);
    // Picked from the newest back, so the newest sample is always there.
    let mut picked: Vec<&Totals> = Vec::new();
    for t in hist.iter().rev().filter(|t| t.at_ms >= from) {
        if picked
            .last()
            .is_none_or(|p| p.at_ms.saturating_sub(t.at_ms) >= incr_s * 1000)
        {
            picked.push(t);
        }
    }
    picked.reverse();
    let samples: Vec<Value> = picked
        .iter()
        .rev()
        .map(|t| json!({ "sample": f(t), "timestamp": t.at_ms }))
        .collect();
    let n = picked.len().max(1) as f64;
    let avg = picked.iter().map(|t| f(t) as f64).sum::<f64>() / n;
    let avg_rate = match (picked.first(), picked.last()) {
        (Some(a), Some(b)) if b.at_ms > a.at_ms => {
            (f(b) as f64 - f(a) as f64) / ((b.at_ms - a.at_ms) as f64 / 1000.0)
        }
        _ => 0.0,
    };
    json!({ "samples": samples, "avg": avg, "avg_rate": avg_rate })
}

/// Adds the samples asked for to `key_details` objects of `group`.
fn add_group(v: &mut Value, group: &str, keys: &[Key], hist: &[Totals], w: (u64, u64)) {
    for (key, f) in keys {
        let Some(Value::Object(d)) = v.pointer_mut(&format!("/{group}/{key}_details")) else {
            continue;
        };
        if let Value::Object(extra) = series(hist, w, *f) {
            d.extend(extra);
        }
    }
}

/// Adds `samples`, `avg` and `avg_rate` to the overview's queue totals
/// (`lengths_age`) and message stats (`msg_rates_age`).
pub(crate) fn overview(v: &mut Value, req: &Req, hist: &[Totals]) {
    if let Some(w) = window(req, "lengths_age") {
        let keys: [Key; 3] = [
            ("messages", |t| t.messages),
            ("messages_ready", |t| t.ready),
            ("messages_unacknowledged", |t| t.unacked),
        ];
        add_group(v, "queue_totals", &keys, hist, w);
    }
    if let Some(w) = window(req, "msg_rates_age") {
        let keys: [Key; 4] = [
            ("publish", |t| t.publish),
            ("deliver_get", |t| t.deliver_get),
            ("ack", |t| t.ack),
            ("redeliver", |t| t.redeliver),
        ];
        add_group(v, "message_stats", &keys, hist, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, publish: u64) -> Totals {
        Totals {
            at_ms: ms,
            publish,
            ..Default::default()
        }
    }

    #[test]
    fn samples_keep_the_window_newest_first_spaced_by_incr() {
        let hist: Vec<Totals> = (0..11).map(|i| at(500 + i * 500, i * 10)).collect();
        // Newest at 5,500 ms: a 3 s window starts at 2,500; 1 s apart.
        let v = series(&hist, (3, 1), |t| t.publish);
        let ts: Vec<u64> = v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["timestamp"].as_u64().unwrap())
            .collect();
        assert_eq!(ts, vec![5_500, 4_500, 3_500, 2_500]);
        assert_eq!(v["samples"][0]["sample"], 100);
        // 100 - 40 over 3 s.
        assert_eq!(v["avg_rate"].as_f64().unwrap(), 20.0);
    }

    #[test]
    fn empty_history_gives_no_samples() {
        let v = series(&[], (60, 5), |t| t.publish);
        assert_eq!(v["samples"], json!([]));
        assert_eq!(v["avg_rate"], json!(0.0));
    }
}
