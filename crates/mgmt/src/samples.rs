//! `*_details.samples` (RabbitMQ's `lengths_age` / `msg_rates_age` /
//! `data_rates_age` and their `_incr`, in seconds) of the overview (from
//! `Stats::history`, one entry per published snapshot, at most
//! `HISTORY_SAMPLES_MAX`) and of queues, exchanges, connections and
//! channels (from their rings, `obj_history.rs`): the points within the
//! age asked, newest first, each `{sample, timestamp}` with `timestamp` in
//! ms, plus `avg` and `avg_rate` over the window when it has two points
//! or more (RabbitMQ's `rabbit_mgmt_stats:average`). The console draws
//! its charts from these.

use serde_json::{json, Value};

use crate::http::Req;
use crate::obj_history::{ObjKey, Point};
use crate::stats::{Stats, Totals};
use crate::views::{self, Counter};

/// Longest window accepted, seconds (RabbitMQ's longest retention: a day).
const AGE_SECONDS_MAX: u64 = 86_400;

/// A window: age and increment, seconds.
pub(crate) type Window = (u64, u64);

/// A series of the overview: its key in the JSON and how to read it.
type Key = (&'static str, fn(&Totals) -> u64);

/// The `{age}` window of `key` (`lengths_age`), if asked.
fn window(req: &Req, key: &str) -> Option<Window> {
    let age: u64 = req.query.get(key)?.parse().ok()?;
    let incr_key = key.replace("_age", "_incr");
    let incr: u64 = req
        .query
        .get(&incr_key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((age.min(AGE_SECONDS_MAX), incr))
}

/// The windows a request asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Windows {
    /// `lengths_age`: queue lengths.
    pub lengths: Option<Window>,
    /// `msg_rates_age`: message counters.
    pub msg_rates: Option<Window>,
    /// `data_rates_age`: connection octets and socket operations.
    pub data_rates: Option<Window>,
}

impl Windows {
    pub fn of(req: &Req) -> Windows {
        Windows {
            lengths: window(req, "lengths_age"),
            msg_rates: window(req, "msg_rates_age"),
            data_rates: window(req, "data_rates_age"),
        }
    }

    fn any(&self) -> bool {
        self.lengths.is_some() || self.msg_rates.is_some() || self.data_rates.is_some()
    }
}

/// The samples of one series of `(at_ms, value)` points (oldest first):
/// those within `age_s` of the newest, at least `incr_s` apart (counted
/// back from the newest), newest first.
fn series(points: &[(u64, u64)], (age_s, incr_s): Window) -> Value {
    let newest = points.last().map_or(0, |p| p.0);
    let from = newest.saturating_sub(age_s * 1000);
    // Picked from the newest back, so the newest sample is always there.
    let mut picked: Vec<(u64, u64)> = Vec::new();
    for &(at, v) in points.iter().rev().filter(|p| p.0 >= from) {
        if picked
            .last()
            .is_none_or(|p| p.0.saturating_sub(at) >= incr_s * 1000)
        {
            picked.push((at, v));
        }
    }
    let samples: Vec<Value> = picked
        .iter()
        .map(|(at, v)| json!({ "sample": v, "timestamp": at }))
        .collect();
    let mut out = json!({ "samples": samples });
    if let (Some(&(t2, s2)), Some(&(t1, s1)), true) =
        (picked.first(), picked.last(), picked.len() > 1)
    {
        let avg = picked.iter().map(|p| p.1 as f64).sum::<f64>() / picked.len() as f64;
        let avg_rate = if t2 > t1 {
            (s2 as f64 - s1 as f64) * 1000.0 / (t2 - t1) as f64
        } else {
            0.0
        };
        out["avg_rate"] = json!(avg_rate);
        out["avg"] = json!(avg);
    }
    out
}

/// Adds a series to `v`'s object at `pointer` (`/message_stats/ack_details`),
/// if it has one.
fn add(v: &mut Value, pointer: &str, points: &[(u64, u64)], w: Window) {
    let Some(Value::Object(d)) = v.pointer_mut(pointer) else {
        return;
    };
    if let Value::Object(extra) = series(points, w) {
        d.extend(extra);
    }
}

/// Adds the samples asked for to `key_details` objects of `group`.
fn add_group(v: &mut Value, group: &str, keys: &[Key], hist: &[Totals], w: Window) {
    for (key, f) in keys {
        let points: Vec<(u64, u64)> = hist.iter().map(|t| (t.at_ms, f(t))).collect();
        add(v, &format!("/{group}/{key}_details"), &points, w);
    }
}

/// Adds `samples`, `avg` and `avg_rate` to the overview's queue totals
/// (`lengths_age`) and message stats (`msg_rates_age`).
pub(crate) fn overview(v: &mut Value, req: &Req, hist: &[Totals]) {
    let w = Windows::of(req);
    if let Some(w) = w.lengths {
        let keys: [Key; 3] = [
            ("messages", |t| t.messages),
            ("messages_ready", |t| t.ready),
            ("messages_unacknowledged", |t| t.unacked),
        ];
        add_group(v, "queue_totals", &keys, hist, w);
    }
    if let Some(w) = w.msg_rates {
        let keys: [Key; 4] = [
            ("publish", |t| t.publish),
            ("deliver_get", |t| t.deliver_get),
            ("ack", |t| t.ack),
            ("redeliver", |t| t.redeliver),
        ];
        add_group(v, "message_stats", &keys, hist, w);
    }
}

/// One table of an object's counters: where its `_details` live in the
/// JSON (`""` top level, `"/message_stats"`), its window, and its first
/// slot in the object's points.
type Group<'a> = (&'a str, Option<Window>, &'a [Counter], usize);

/// Adds the samples asked for to an object's JSON: its history (watched
/// from now on) for each group of counters whose window was asked.
fn object(v: &mut Value, stats: &Stats, key: ObjKey, now: Point, groups: &[Group]) {
    if groups.iter().all(|g| g.1.is_none()) {
        return;
    }
    let hist = stats.object_history(key, now);
    for (at, w, table, first) in groups {
        let Some(w) = *w else { continue };
        for (i, (name, _, _)) in table.iter().enumerate() {
            let points: Vec<(u64, u64)> = hist
                .iter()
                .map(|p| (p.at_ms, p.v.get(first + i).copied().unwrap_or(0)))
                .collect();
            add(v, &format!("{at}/{name}_details"), &points, w);
        }
    }
}

/// What an object's samples need: the request's windows and the history.
#[derive(Clone, Copy)]
pub(crate) struct Asked<'a> {
    /// The windows asked.
    pub w: Windows,
    /// The histories.
    pub stats: &'a Stats,
    /// The current snapshot's time.
    pub at_ms: u64,
}

impl<'a> Asked<'a> {
    /// The request's windows, None if it asks for none.
    pub fn of(req: &Req, stats: &'a Stats, at_ms: u64) -> Option<Asked<'a>> {
        let w = Windows::of(req);
        w.any().then_some(Asked { w, stats, at_ms })
    }

    /// A queue: lengths at the top level, counters in `message_stats`.
    pub fn queue(&self, v: &mut Value, q: &broker_core::inspect::QueueView) {
        let (l, c) = (
            views::queue_lengths(q, None),
            views::queue_counters(q, None),
        );
        let groups: [Group; 2] = [
            ("", self.w.lengths, &l, 0),
            ("/message_stats", self.w.msg_rates, &c, l.len()),
        ];
        let key = ObjKey::Queue(q.vhost.clone(), q.name.clone());
        object(v, self.stats, key, Point::queue(self.at_ms, q), &groups);
    }

    /// An exchange: `publish_in` / `publish_out`.
    pub fn exchange(&self, v: &mut Value, x: &broker_core::inspect::ExchangeView) {
        let Some(t) = views::exchange_counters(x, true, None) else {
            return;
        };
        let groups: [Group; 1] = [("/message_stats", self.w.msg_rates, &t, 0)];
        let key = ObjKey::Exchange(x.vhost.clone(), x.name.clone());
        object(v, self.stats, key, Point::exchange(self.at_ms, x), &groups);
    }

    /// A connection: octets and socket operations (`data_rates_age`).
    pub fn conn(&self, v: &mut Value, c: &broker_core::inspect::ConnView) {
        let t = views::conn_counters(c, None);
        let groups: [Group; 1] = [("", self.w.data_rates, &t, 0)];
        object(
            v,
            self.stats,
            ObjKey::Conn(c.id),
            Point::conn(self.at_ms, c),
            &groups,
        );
    }

    /// A channel: its `message_stats`.
    pub fn channel(&self, v: &mut Value, ch: &broker_core::inspect::ChannelView) {
        let Some(t) = views::channel_counters(ch, None) else {
            return;
        };
        let groups: [Group; 1] = [("/message_stats", self.w.msg_rates, &t, 0)];
        let key = ObjKey::Channel(ch.conn, ch.number);
        object(v, self.stats, key, Point::channel(self.at_ms, ch), &groups);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_the_window_newest_first_spaced_by_incr() {
        let points: Vec<(u64, u64)> = (0..11).map(|i| (500 + i * 500, i * 10)).collect();
        // Newest at 5,500 ms: a 3 s window starts at 2,500; 1 s apart.
        let v = series(&points, (3, 1));
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
        assert_eq!(v["avg"].as_f64().unwrap(), 70.0);
    }

    #[test]
    fn one_sample_or_none_has_no_averages() {
        // RabbitMQ's `average/3`: nothing for a window of one point.
        let v = series(&[], (60, 5));
        assert_eq!(v, json!({ "samples": [] }));
        let v = series(&[(1_000, 7)], (60, 5));
        assert_eq!(
            v,
            json!({ "samples": [{ "sample": 7, "timestamp": 1_000 }] })
        );
    }
}
