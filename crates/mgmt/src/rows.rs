//! The rows of the object lists (queues, exchanges, connections, channels,
//! bindings, consumers): references into the snapshot that answer the
//! filters and the sort from the snapshot's fields, and build their JSON
//! (`views.rs`) only when `list::respond` answers them. The sort keys a
//! row knows read the same values and counter tables as its view; a path
//! a row does not know (`arguments.*`, `client_properties.*`) is read
//! from its JSON. `list_tests.rs` checks every key against the JSON.

use std::borrow::Cow;
use std::collections::HashMap;

use broker_core::inspect::{
    BindingView, ChannelView, ConnView, ConsumerView, ExchangeView, QueueView, Snapshot,
};
use serde_json::{json, Value};

use crate::list::{bool_key, num_key, str_key, Row, SortKey};
use crate::samples::Asked;
use crate::stats::Prev;
use crate::views::{self, Counter, Rates};

/// What building a row's JSON needs besides the object.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The node name shown.
    pub node: &'a str,
    /// Rates between the two snapshots.
    pub r: &'a Rates,
    /// The previous snapshot, indexed.
    pub before: &'a Prev,
    /// Statistics shown (not `disable_stats`).
    pub stats: bool,
    /// `enable_queue_totals` (message counts even with `disable_stats`).
    pub totals: bool,
    /// The `*_details.samples` asked for (with statistics only).
    pub samples: Option<Asked<'a>>,
}

impl Ctx<'_> {
    /// The same without samples (for sort keys read from the JSON).
    fn plain(&self) -> Ctx<'_> {
        Ctx {
            samples: None,
            ..*self
        }
    }
}

/// A queue's JSON with the samples asked for (the single-object GET).
pub(crate) fn queue_json(q: &QueueView, cx: &Ctx) -> Value {
    let mut j = views::queue(q, cx.node, cx.stats, cx.r, cx.before.queue(q));
    if let Some(a) = &cx.samples {
        a.queue(&mut j, q);
    }
    j
}

/// An exchange's JSON with the samples asked for.
pub(crate) fn exchange_json(x: &ExchangeView, cx: &Ctx) -> Value {
    let mut j = views::exchange(x, cx.stats, cx.r, cx.before.exchange(x));
    if let Some(a) = &cx.samples {
        a.exchange(&mut j, x);
    }
    j
}

/// A connection's JSON with the samples asked for.
pub(crate) fn conn_json(c: &ConnView, cx: &Ctx) -> Value {
    let mut j = views::connection(c, cx.node, cx.r, cx.before.conn(c.id));
    if let Some(a) = &cx.samples {
        a.conn(&mut j, c);
    }
    j
}

/// A channel's JSON with the samples asked for.
pub(crate) fn channel_json(ch: &ChannelView, c: &ConnView, cx: &Ctx) -> Value {
    let b = cx.before.channel(ch.conn, ch.number);
    let mut j = views::channel(ch, c, cx.node, cx.r, b);
    if let Some(a) = &cx.samples {
        a.channel(&mut j, ch);
    }
    j
}

/// The key of `path` in a counter table (`key`, `key_details.rate`).
fn counter(table: &[Counter], path: &str, r: &Rates) -> Option<SortKey> {
    for (k, now, was) in table {
        match path.strip_prefix(k) {
            Some("") => return Some(num_key(*now as f64)),
            Some("_details.rate") => return Some(num_key(r.rate(*now, *was))),
            _ => {}
        }
    }
    None
}

/// The key of a field absent from the JSON.
fn missing() -> Option<SortKey> {
    Some(num_key(0.0))
}

/// `message_stats.*` of a view that shows them only sometimes.
fn msg_stats(table: Option<&[Counter]>, path: &str, r: &Rates) -> Option<SortKey> {
    let rest = path.strip_prefix("message_stats.")?;
    match table {
        None => missing(),
        Some(t) => counter(t, rest, r),
    }
}

/// A queue.
pub(crate) struct QueueRow<'a> {
    q: &'a QueueView,
    cx: &'a Ctx<'a>,
}

impl Row for QueueRow<'_> {
    fn vhost(&self) -> Option<&str> {
        Some(&self.q.vhost)
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.q.name.as_str()))
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        let (q, cx) = (self.q, self.cx);
        match path {
            "name" => return Some(str_key(&q.name)),
            "vhost" => return Some(str_key(&q.vhost)),
            "type" => return Some(str_key(q.kind)),
            "durable" => return Some(bool_key(q.durable)),
            "auto_delete" => return Some(bool_key(q.auto_delete)),
            "exclusive" => return Some(bool_key(q.exclusive_owner.is_some())),
            _ => {}
        }
        if !cx.stats {
            // Only the message counts of `enable_queue_totals` are known.
            let lengths = views::queue_lengths(q, None);
            return match lengths.iter().find(|(k, _, _)| *k == path) {
                Some((_, n, _)) if cx.totals => Some(num_key(*n as f64)),
                Some(_) => missing(),
                None => None,
            };
        }
        match path {
            "consumers" => return Some(num_key(f64::from(views::queue_consumers(q)))),
            "message_bytes_ready" => return Some(num_key(q.ready_bytes as f64)),
            "memory" => return Some(num_key(views::queue_memory(q) as f64)),
            _ => {}
        }
        let b = || cx.before.queue(q);
        if path.starts_with("message_stats.") {
            let t = views::queue_has_stats(q).then(|| views::queue_counters(q, b()));
            return msg_stats(t.as_ref().map(|t| &t[..]), path, cx.r);
        }
        counter(&views::queue_lengths(q, b()), path, cx.r)
    }
    fn json(&self) -> Value {
        queue_row_json(self.q, self.cx)
    }
    fn key_json(&self) -> Value {
        queue_row_json(self.q, &self.cx.plain())
    }
}

/// A queue's JSON in a list (`enable_queue_totals` applies).
fn queue_row_json(q: &QueueView, cx: &Ctx) -> Value {
    let mut j = queue_json(q, cx);
    if !cx.stats && cx.totals {
        for (k, n, _) in views::queue_lengths(q, None) {
            j[k] = json!(n);
        }
    }
    j
}

/// The queues (of `vhost`), by vhost and name.
pub(crate) fn queues<'a>(
    s: &'a Snapshot,
    cx: &'a Ctx<'a>,
    vhost: Option<&str>,
) -> Vec<QueueRow<'a>> {
    let mut v: Vec<QueueRow> = s
        .queues
        .iter()
        .filter(|q| vhost.is_none_or(|v| &*q.vhost == v))
        .map(|q| QueueRow { q, cx })
        .collect();
    v.sort_by(|a, b| (&a.q.vhost, &a.q.name).cmp(&(&b.q.vhost, &b.q.name)));
    v
}

/// An exchange.
pub(crate) struct ExchangeRow<'a> {
    x: &'a ExchangeView,
    cx: &'a Ctx<'a>,
}

impl Row for ExchangeRow<'_> {
    fn vhost(&self) -> Option<&str> {
        Some(&self.x.vhost)
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.x.name.as_str()))
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        let (x, cx) = (self.x, self.cx);
        match path {
            "name" => Some(str_key(&x.name)),
            "vhost" => Some(str_key(&x.vhost)),
            "type" => Some(str_key(x.kind)),
            "durable" => Some(bool_key(x.durable)),
            "auto_delete" => Some(bool_key(x.auto_delete)),
            "internal" => Some(bool_key(x.internal)),
            _ => {
                let t = views::exchange_counters(x, cx.stats, cx.before.exchange(x));
                msg_stats(t.as_ref().map(|t| &t[..]), path, cx.r)
            }
        }
    }
    fn json(&self) -> Value {
        exchange_json(self.x, self.cx)
    }
    fn key_json(&self) -> Value {
        exchange_json(self.x, &self.cx.plain())
    }
}

/// The exchanges (of `vhost`), by vhost and name.
pub(crate) fn exchanges<'a>(
    s: &'a Snapshot,
    cx: &'a Ctx<'a>,
    vhost: Option<&str>,
) -> Vec<ExchangeRow<'a>> {
    let mut v: Vec<ExchangeRow> = s
        .exchanges
        .iter()
        .filter(|x| vhost.is_none_or(|v| &*x.vhost == v))
        .map(|x| ExchangeRow { x, cx })
        .collect();
    v.sort_by(|a, b| (&a.x.vhost, &a.x.name).cmp(&(&b.x.vhost, &b.x.name)));
    v
}

/// A connection.
pub(crate) struct ConnRow<'a> {
    c: &'a ConnView,
    cx: &'a Ctx<'a>,
}

impl Row for ConnRow<'_> {
    fn vhost(&self) -> Option<&str> {
        Some(&self.c.vhost)
    }
    fn user(&self) -> Option<&str> {
        Some(&self.c.user)
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(views::conn_name(self.c)))
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        let (c, cx) = (self.c, self.cx);
        let port = |a: Option<std::net::SocketAddr>| {
            a.map_or(missing(), |a| Some(num_key(f64::from(a.port()))))
        };
        let host = |a: Option<std::net::SocketAddr>| {
            a.map_or(missing(), |a| Some(str_key(&a.ip().to_string())))
        };
        match path {
            "name" => Some(str_key(&views::conn_name(c))),
            "user" => Some(str_key(&c.user)),
            "vhost" => Some(str_key(&c.vhost)),
            "connected_at" => Some(num_key(c.connected_at_ms as f64)),
            "channels" => Some(num_key(f64::from(views::conn_channels(c)))),
            "state" => Some(str_key(views::conn_state(c))),
            "auth_mechanism" => Some(str_key(c.auth_mechanism)),
            "frame_max" => Some(num_key(f64::from(c.frame_max))),
            "channel_max" => Some(num_key(f64::from(c.channel_max))),
            "timeout" => Some(num_key(f64::from(c.heartbeat_s))),
            "peer_host" => host(c.peer),
            "peer_port" => port(c.peer),
            "host" => host(c.local),
            "port" => port(c.local),
            _ => counter(&views::conn_counters(c, cx.before.conn(c.id)), path, cx.r),
        }
    }
    fn json(&self) -> Value {
        conn_json(self.c, self.cx)
    }
    fn key_json(&self) -> Value {
        conn_json(self.c, &self.cx.plain())
    }
}

/// The connections (of `vhost`), in the snapshot's order.
pub(crate) fn conns<'a>(s: &'a Snapshot, cx: &'a Ctx<'a>, vhost: Option<&str>) -> Vec<ConnRow<'a>> {
    s.connections
        .iter()
        .filter(|c| vhost.is_none_or(|v| &*c.vhost == v))
        .map(|c| ConnRow { c, cx })
        .collect()
}

/// A channel, with its connection.
pub(crate) struct ChanRow<'a> {
    ch: &'a ChannelView,
    c: &'a ConnView,
    cx: &'a Ctx<'a>,
}

impl Row for ChanRow<'_> {
    fn vhost(&self) -> Option<&str> {
        Some(&self.c.vhost)
    }
    fn user(&self) -> Option<&str> {
        Some(&self.c.user)
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(views::channel_name(self.ch, self.c)))
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        let (ch, c, cx) = (self.ch, self.c, self.cx);
        let n = |v: u32| Some(num_key(f64::from(v)));
        match path {
            "name" => Some(str_key(&views::channel_name(ch, c))),
            "number" => n(u32::from(ch.number)),
            "user" => Some(str_key(&c.user)),
            "vhost" => Some(str_key(&c.vhost)),
            "connection_details.name" => Some(str_key(&views::conn_name(c))),
            "state" => Some(str_key(views::channel_state(ch))),
            "consumer_count" => n(ch.consumers),
            "confirm" => Some(bool_key(ch.confirm)),
            "transactional" => Some(bool_key(ch.transactional)),
            "prefetch_count" => n(ch.prefetch_count),
            "global_prefetch_count" => n(ch.global_prefetch_count),
            "messages_unacknowledged" => n(ch.unacked),
            "messages_unconfirmed" => n(ch.unconfirmed),
            "messages_uncommitted" => n(ch.uncommitted),
            _ => {
                let t = views::channel_counters(ch, cx.before.channel(ch.conn, ch.number));
                msg_stats(t.as_ref().map(|t| &t[..]), path, cx.r)
            }
        }
    }
    fn json(&self) -> Value {
        channel_json(self.ch, self.c, self.cx)
    }
    fn key_json(&self) -> Value {
        channel_json(self.ch, self.c, &self.cx.plain())
    }
}

/// The snapshot's connections by id (channels and consumers join theirs
/// in O(1) each).
fn conns_by_id(s: &Snapshot) -> HashMap<u64, &ConnView> {
    s.connections.iter().map(|c| (c.id, c)).collect()
}

/// The channels `keep` selects (those of a known connection), in the
/// snapshot's order.
pub(crate) fn chans<'a>(
    s: &'a Snapshot,
    cx: &'a Ctx<'a>,
    keep: impl Fn(&ChannelView, &ConnView) -> bool,
) -> Vec<ChanRow<'a>> {
    let conn = conns_by_id(s);
    s.channels
        .iter()
        .filter_map(|ch| {
            let c = *conn.get(&ch.conn)?;
            keep(ch, c).then_some(ChanRow { ch, c, cx })
        })
        .collect()
}

/// A consumer, with its connection if known.
pub(crate) struct ConsumerRow<'a> {
    k: &'a ConsumerView,
    c: Option<&'a ConnView>,
    node: &'a str,
}

impl Row for ConsumerRow<'_> {
    // Its JSON has the vhost under `queue`; a user sees the consumers of the
    // vhosts they may access, as RabbitMQ's `filter_vhost` does.
    fn vhost(&self) -> Option<&str> {
        Some(&self.k.vhost)
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        let k = self.k;
        match path {
            "consumer_tag" => Some(str_key(&k.tag)),
            "queue.name" => Some(str_key(&k.queue)),
            "queue.vhost" => Some(str_key(&k.vhost)),
            "ack_required" => Some(bool_key(k.ack_required)),
            "exclusive" => Some(bool_key(k.exclusive)),
            "active" => Some(bool_key(k.active)),
            "activity_status" => Some(str_key(views::consumer_status(k))),
            "prefetch_count" => Some(num_key(f64::from(k.prefetch))),
            _ => None,
        }
    }
    fn json(&self) -> Value {
        views::consumer(self.k, self.c, self.node)
    }
}

/// The consumers (of `vhost`), in the snapshot's order.
pub(crate) fn consumers<'a>(
    s: &'a Snapshot,
    node: &'a str,
    vhost: Option<&str>,
) -> Vec<ConsumerRow<'a>> {
    let conn = conns_by_id(s);
    s.consumers
        .iter()
        .filter(|k| vhost.is_none_or(|v| &*k.vhost == v))
        .map(|k| ConsumerRow {
            k,
            c: conn.get(&k.conn).copied(),
            node,
        })
        .collect()
}

/// A binding, or the default exchange's implicit binding to a queue.
pub(crate) enum BindingRow<'a> {
    /// A declared binding.
    Of(&'a BindingView),
    /// The default exchange's binding to this queue.
    Default(&'a QueueView),
}

impl Row for BindingRow<'_> {
    fn vhost(&self) -> Option<&str> {
        Some(match self {
            BindingRow::Of(b) => &b.vhost,
            BindingRow::Default(q) => &q.vhost,
        })
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        let (source, destination, to_queue, rk): (&str, &str, bool, &str) = match self {
            BindingRow::Of(b) => (&b.source, &b.destination, b.to_queue, &b.routing_key),
            BindingRow::Default(q) => ("", &q.name, true, &q.name),
        };
        match path {
            "vhost" => self.vhost().map(str_key),
            "source" => Some(str_key(source)),
            "destination" => Some(str_key(destination)),
            "destination_type" => Some(str_key(views::destination_type(to_queue))),
            "routing_key" => Some(str_key(rk)),
            _ => None,
        }
    }
    fn json(&self) -> Value {
        match self {
            BindingRow::Of(b) => views::binding(b),
            BindingRow::Default(q) => views::default_binding(q),
        }
    }
}

/// The bindings (of `vhost`): the default exchange's to each queue first,
/// as RabbitMQ lists them.
pub(crate) fn bindings<'a>(s: &'a Snapshot, vhost: Option<&str>) -> Vec<BindingRow<'a>> {
    let keep = |v: &str| vhost.is_none_or(|x| x == v);
    let defaults = s.queues.iter().filter(|q| keep(&q.vhost));
    let declared = s.bindings.iter().filter(|b| keep(&b.vhost));
    defaults
        .map(BindingRow::Default)
        .chain(declared.map(BindingRow::Of))
        .collect()
}
