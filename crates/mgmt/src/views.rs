//! Snapshot views as RabbitMQ's JSON objects (the fields clients need).

use broker_core::inspect::{
    BindingView, ChannelView, ConnView, ConsumerView, ExchangeView, QueueView, Snapshot,
};
use serde_json::{json, Map, Value};

use crate::json::table;

/// `X_details: {rate}` beside counter `X`, from the previous snapshot.
pub struct Rates {
    /// Seconds between the two snapshots (0 = no rates yet).
    pub dt_s: f64,
}

impl Rates {
    pub fn of(now: &Snapshot, before: Option<&Snapshot>) -> Rates {
        let dt_s = before.map_or(0.0, |b| {
            now.taken_at_ms.saturating_sub(b.taken_at_ms) as f64 / 1000.0
        });
        Rates { dt_s }
    }

    /// The rate of a counter now at `now`, `before` in the previous snapshot.
    pub fn rate(&self, now: u64, before: Option<u64>) -> f64 {
        match before {
            Some(b) if self.dt_s > 0.0 => now.saturating_sub(b) as f64 / self.dt_s,
            _ => 0.0,
        }
    }

    /// Adds `key` and `key_details` to `m`.
    pub fn put(&self, m: &mut Map<String, Value>, key: &str, now: u64, before: Option<u64>) {
        m.insert(key.into(), json!(now));
        m.insert(
            format!("{key}_details"),
            json!({ "rate": self.rate(now, before) }),
        );
    }
}

/// A counter shown as `key` with `key_details.rate`: its name, its value
/// now and in the previous snapshot. The tables below are what the views
/// show and what lists sort on (`rows.rs`), so both read them here.
pub type Counter = (&'static str, u64, Option<u64>);

/// A queue's message counts (top level of its JSON).
pub fn queue_lengths(q: &QueueView, b: Option<&QueueView>) -> [Counter; 3] {
    [
        (
            "messages",
            q.ready + q.unacked,
            b.map(|b| b.ready + b.unacked),
        ),
        ("messages_ready", q.ready, b.map(|b| b.ready)),
        ("messages_unacknowledged", q.unacked, b.map(|b| b.unacked)),
    ]
}

/// A queue's `message_stats` (shown when any is non-zero).
pub fn queue_counters(q: &QueueView, b: Option<&QueueView>) -> [Counter; 9] {
    let s = &q.stats;
    let bs = b.map(|b| b.stats);
    [
        ("publish", s.publish, bs.map(|b| b.publish)),
        ("deliver", s.deliver, bs.map(|b| b.deliver)),
        (
            "deliver_no_ack",
            s.deliver_no_ack,
            bs.map(|b| b.deliver_no_ack),
        ),
        ("get", s.get, bs.map(|b| b.get)),
        ("get_no_ack", s.get_no_ack, bs.map(|b| b.get_no_ack)),
        ("get_empty", s.get_empty, bs.map(|b| b.get_empty)),
        (
            "deliver_get",
            s.deliver + s.deliver_no_ack + s.get + s.get_no_ack,
            bs.map(|b| b.deliver + b.deliver_no_ack + b.get + b.get_no_ack),
        ),
        ("redeliver", s.redeliver, bs.map(|b| b.redeliver)),
        ("ack", s.ack, bs.map(|b| b.ack)),
    ]
}

/// Whether a queue shows `message_stats`.
pub fn queue_has_stats(q: &QueueView) -> bool {
    q.stats != Default::default()
}

/// A queue's `consumers` (RabbitMQ's field is 16 bits wide in clients).
pub fn queue_consumers(q: &QueueView) -> u32 {
    q.consumers.min(u32::from(u16::MAX))
}

/// A queue's `memory` estimate.
pub fn queue_memory(q: &QueueView) -> u64 {
    1024 + 8 * (q.ready + q.unacked)
}

/// An exchange's `message_stats`, when it shows them (`stats` asked and
/// anything published).
pub fn exchange_counters(
    x: &ExchangeView,
    stats: bool,
    b: Option<&ExchangeView>,
) -> Option<[Counter; 2]> {
    if !stats || x.stats.publish_in == 0 {
        return None;
    }
    let bs = b.map(|b| b.stats);
    Some([
        ("publish_in", x.stats.publish_in, bs.map(|b| b.publish_in)),
        (
            "publish_out",
            x.stats.publish_in.saturating_sub(x.stats.unroutable),
            bs.map(|b| b.publish_in.saturating_sub(b.unroutable)),
        ),
    ])
}

/// A connection's socket counters.
pub fn conn_counters(c: &ConnView, b: Option<&ConnView>) -> [Counter; 4] {
    let b = b.map(|b| b.io);
    [
        ("recv_oct", c.io.0, b.map(|b| b.0)),
        ("recv_cnt", c.io.1, b.map(|b| b.1)),
        ("send_oct", c.io.2, b.map(|b| b.2)),
        ("send_cnt", c.io.3, b.map(|b| b.3)),
    ]
}

/// A connection's `state`.
pub fn conn_state(c: &ConnView) -> &'static str {
    if c.closing {
        "closing"
    } else if c.blocked {
        "blocked"
    } else {
        "running"
    }
}

/// A connection's `channels`.
pub fn conn_channels(c: &ConnView) -> u32 {
    c.channels.min(u32::from(u16::MAX))
}

/// A channel's `message_stats`, when it shows them (any non-zero).
pub fn channel_counters(ch: &ChannelView, b: Option<&ChannelView>) -> Option<[Counter; 8]> {
    let s = ch.stats;
    if s == Default::default() {
        return None;
    }
    let bs = b.map(|b| b.stats);
    Some([
        ("publish", s.publish, bs.map(|b| b.publish)),
        ("deliver", s.deliver, bs.map(|b| b.deliver)),
        (
            "deliver_no_ack",
            s.deliver_no_ack,
            bs.map(|b| b.deliver_no_ack),
        ),
        ("get", s.get, bs.map(|b| b.get)),
        ("get_no_ack", s.get_no_ack, bs.map(|b| b.get_no_ack)),
        (
            "deliver_get",
            s.deliver + s.deliver_no_ack + s.get + s.get_no_ack,
            bs.map(|b| b.deliver + b.deliver_no_ack + b.get + b.get_no_ack),
        ),
        ("redeliver", s.redeliver, bs.map(|b| b.redeliver)),
        ("ack", s.ack, bs.map(|b| b.ack)),
    ])
}

/// A channel's `name`.
pub fn channel_name(ch: &ChannelView, c: &ConnView) -> String {
    format!("{} ({})", conn_name(c), ch.number)
}

/// A channel's `state`.
pub fn channel_state(ch: &ChannelView) -> &'static str {
    if ch.closing {
        "closing"
    } else {
        "running"
    }
}

/// RabbitMQ's connection name.
pub fn conn_name(c: &ConnView) -> String {
    match (c.peer, c.local) {
        (Some(p), Some(l)) => format!("{} -> {}", fmt_addr(p), fmt_addr(l)),
        _ => format!("connection {}", c.id),
    }
}

fn fmt_addr(a: std::net::SocketAddr) -> String {
    format!("{}:{}", a.ip(), a.port())
}

pub fn queue(
    q: &QueueView,
    node: &str,
    stats: bool,
    r: &Rates,
    before: Option<&QueueView>,
) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(q.name.as_str()));
    m.insert("vhost".into(), json!(&*q.vhost));
    m.insert("durable".into(), json!(q.durable));
    m.insert("auto_delete".into(), json!(q.auto_delete));
    m.insert("exclusive".into(), json!(q.exclusive_owner.is_some()));
    m.insert("arguments".into(), table(&q.arguments));
    m.insert("type".into(), json!(q.kind));
    m.insert("node".into(), json!(node));
    m.insert("state".into(), json!("running"));
    if !stats {
        return Value::Object(m);
    }
    m.insert("consumers".into(), json!(queue_consumers(q)));
    m.insert(
        "consumer_capacity".into(),
        json!(if q.consumers > 0 { 1.0 } else { 0.0 }),
    );
    m.insert(
        "consumer_utilisation".into(),
        json!(if q.consumers > 0 { 1.0 } else { 0.0 }),
    );
    for (k, now, was) in queue_lengths(q, before) {
        r.put(&mut m, k, now, was);
    }
    m.insert("message_bytes_ready".into(), json!(q.ready_bytes));
    m.insert("memory".into(), json!(queue_memory(q)));
    m.insert("idle_since".into(), json!(idle(q.last_used_ms)));
    if queue_has_stats(q) {
        let mut ms = Map::new();
        for (k, now, was) in queue_counters(q, before) {
            r.put(&mut ms, k, now, was);
        }
        m.insert("message_stats".into(), Value::Object(ms));
    }
    Value::Object(m)
}

fn idle(ms: u64) -> String {
    // RabbitMQ: "2024-01-01T00:00:00.000+00:00"-like; clients treat it as text.
    date_time(ms)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a wall-clock time in ms since the epoch.
pub(crate) fn date_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn exchange(x: &ExchangeView, stats: bool, r: &Rates, before: Option<&ExchangeView>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(x.name.as_str()));
    m.insert("vhost".into(), json!(&*x.vhost));
    m.insert("type".into(), json!(x.kind));
    m.insert("durable".into(), json!(x.durable));
    m.insert("auto_delete".into(), json!(x.auto_delete));
    m.insert("internal".into(), json!(x.internal));
    m.insert("arguments".into(), table(&x.arguments));
    m.insert("user_who_performed_action".into(), json!("rmq-internal"));
    if let Some(counters) = exchange_counters(x, stats, before) {
        let mut ms = Map::new();
        for (k, now, was) in counters {
            r.put(&mut ms, k, now, was);
        }
        m.insert("message_stats".into(), Value::Object(ms));
    }
    Value::Object(m)
}

/// What RabbitMQ's URL quoting leaves as is: alphanumerics and `-._`.
const QUOTE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// RabbitMQ's URL quoting (`~` and `*` are escaped, `-._` kept).
pub fn quote(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUOTE).to_string()
}

/// RabbitMQ's `properties_key` of a binding.
pub fn props_key(routing_key: &str, arguments: &amqp_codec::FieldTable) -> String {
    let quoted = quote(routing_key);
    if arguments.0.is_empty() {
        return if routing_key.is_empty() {
            "~".into()
        } else {
            quoted
        };
    }
    // Any stable hash of the arguments (clients only echo the key).
    let mut h: u32 = 0x811c_9dc5;
    for b in table(arguments).to_string().bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    use base64::Engine;
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.to_be_bytes());
    format!("{quoted}~{hash}")
}

/// A binding's `destination_type`.
pub fn destination_type(to_queue: bool) -> &'static str {
    if to_queue {
        "queue"
    } else {
        "exchange"
    }
}

pub fn binding(b: &BindingView) -> Value {
    json!({
        "source": b.source.as_str(),
        "vhost": &*b.vhost,
        "destination": b.destination.as_str(),
        "destination_type": destination_type(b.to_queue),
        "routing_key": b.routing_key.as_str(),
        "arguments": table(&b.arguments),
        "properties_key": props_key(&b.routing_key, &b.arguments),
    })
}

/// The implicit binding of the default exchange to a queue.
pub fn default_binding(q: &QueueView) -> Value {
    json!({
        "source": "",
        "vhost": &*q.vhost,
        "destination": q.name.as_str(),
        "destination_type": "queue",
        "routing_key": q.name.as_str(),
        "arguments": {},
        "properties_key": props_key(&q.name, &Default::default()),
    })
}

pub fn connection(c: &ConnView, node: &str, r: &Rates, before: Option<&ConnView>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(conn_name(c)));
    m.insert("node".into(), json!(node));
    m.insert("type".into(), json!("network"));
    m.insert("protocol".into(), json!("AMQP 0-9-1"));
    m.insert("user".into(), json!(c.user));
    m.insert("user_who_performed_action".into(), json!(c.user));
    m.insert("vhost".into(), json!(&*c.vhost));
    m.insert("connected_at".into(), json!(c.connected_at_ms));
    m.insert(
        "client_properties".into(),
        table(&c.client_properties.decode()),
    );
    m.insert("auth_mechanism".into(), json!(c.auth_mechanism));
    m.insert("ssl".into(), json!(false));
    m.insert("frame_max".into(), json!(c.frame_max));
    m.insert("channel_max".into(), json!(c.channel_max));
    m.insert("timeout".into(), json!(c.heartbeat_s));
    m.insert("channels".into(), json!(conn_channels(c)));
    m.insert("state".into(), json!(conn_state(c)));
    if let Some(p) = c.peer {
        m.insert("peer_host".into(), json!(p.ip().to_string()));
        m.insert("peer_port".into(), json!(p.port()));
    }
    if let Some(l) = c.local {
        m.insert("host".into(), json!(l.ip().to_string()));
        m.insert("port".into(), json!(l.port()));
    }
    for (k, now, was) in conn_counters(c, before) {
        r.put(&mut m, k, now, was);
    }
    m.insert("send_pend".into(), json!(0));
    Value::Object(m)
}

pub fn channel(
    ch: &ChannelView,
    c: &ConnView,
    node: &str,
    r: &Rates,
    before: Option<&ChannelView>,
) -> Value {
    let cname = conn_name(c);
    let mut m = Map::new();
    m.insert("name".into(), json!(channel_name(ch, c)));
    m.insert("number".into(), json!(ch.number));
    m.insert("node".into(), json!(node));
    m.insert("user".into(), json!(c.user));
    m.insert("vhost".into(), json!(&*c.vhost));
    m.insert(
        "connection_details".into(),
        json!({
            "name": cname,
            "peer_host": c.peer.map(|p| p.ip().to_string()),
            "peer_port": c.peer.map(|p| p.port()),
        }),
    );
    m.insert("state".into(), json!(channel_state(ch)));
    m.insert("consumer_count".into(), json!(ch.consumers));
    m.insert("confirm".into(), json!(ch.confirm));
    m.insert("transactional".into(), json!(ch.transactional));
    m.insert("prefetch_count".into(), json!(ch.prefetch_count));
    m.insert(
        "global_prefetch_count".into(),
        json!(ch.global_prefetch_count),
    );
    m.insert("messages_unacknowledged".into(), json!(ch.unacked));
    m.insert("messages_unconfirmed".into(), json!(ch.unconfirmed));
    m.insert("messages_uncommitted".into(), json!(ch.uncommitted));
    m.insert("acks_uncommitted".into(), json!(0));
    if let Some(counters) = channel_counters(ch, before) {
        let mut ms = Map::new();
        for (k, now, was) in counters {
            r.put(&mut ms, k, now, was);
        }
        m.insert("message_stats".into(), Value::Object(ms));
    }
    Value::Object(m)
}

/// A consumer, with its channel's details when the connection is known.
pub fn consumer(k: &ConsumerView, c: Option<&ConnView>, node: &str) -> Value {
    let details = c.map_or(json!({}), |c| {
        let cname = conn_name(c);
        json!({ "number": k.channel, "name": format!("{cname} ({})", k.channel), "connection_name": cname, "node": node,
                "peer_host": c.peer.map(|p| p.ip().to_string()), "peer_port": c.peer.map(|p| p.port()), "user": c.user })
    });
    json!({
        "consumer_tag": k.tag.as_str(), "active": k.active, "activity_status": consumer_status(k),
        "ack_required": k.ack_required, "prefetch_count": k.prefetch, "exclusive": k.exclusive,
        "arguments": if k.priority != 0 { json!({"x-priority": k.priority}) } else { json!({}) },
        "consumer_timeout": CONSUMER_TIMEOUT_MS, "queue": { "name": k.queue.as_str(), "vhost": &*k.vhost }, "channel_details": details,
    })
}

/// The `consumer_timeout` reported (RabbitMQ 3.10's default, ms).
pub const CONSUMER_TIMEOUT_MS: u64 = 1_800_000;

/// A consumer's `activity_status`.
pub fn consumer_status(k: &ConsumerView) -> &'static str {
    if k.active {
        "up"
    } else {
        "waiting"
    }
}
