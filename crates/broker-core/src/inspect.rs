//! The read snapshot for the management API: plain values copied from the
//! core under its lock (names are shared `Bytes`, so copying is a refcount
//! bump), published by the server every `collect_statistics_interval_ms`
//! and read by the API without the lock. Cost: O(vhosts + exchanges +
//! bindings + queues + connections + channels + consumers + unacked).

use std::net::SocketAddr;
use std::sync::Arc;

use amqp_codec::{FieldTable, ShortStr};
use rustc_hash::FxHashMap;

use crate::broker::Broker;
use crate::exchange::Destination;
use crate::stats::{ChannelStats, ExchangeStats, QueueStats};
use crate::ConnId;

/// A queue.
#[derive(Debug, Clone)]
pub struct QueueView {
    /// Its vhost.
    pub vhost: Arc<str>,
    /// Its name.
    pub name: ShortStr,
    /// Declared durable.
    pub durable: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// The owning connection of an exclusive queue.
    pub exclusive_owner: Option<ConnId>,
    /// Declared arguments.
    pub arguments: FieldTable,
    /// `classic` or `quorum`.
    pub kind: &'static str,
    /// Ready messages.
    pub ready: u64,
    /// Delivered, not yet acknowledged.
    pub unacked: u64,
    /// Body bytes of ready messages (kept only for x-max-length-bytes).
    pub ready_bytes: u64,
    /// Its consumers.
    pub consumers: u32,
    /// Last use (declare, get, consume), ms since the epoch.
    pub last_used_ms: u64,
    /// Message counters.
    pub stats: QueueStats,
}

/// An exchange.
#[derive(Debug, Clone)]
pub struct ExchangeView {
    /// Its vhost.
    pub vhost: Arc<str>,
    /// Its name ("" for the default exchange).
    pub name: ShortStr,
    /// `direct`, `fanout`, `topic`, `headers`, `x-delayed-message`, ...
    pub kind: &'static str,
    /// Declared durable.
    pub durable: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// Declared internal.
    pub internal: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
    /// Message counters.
    pub stats: ExchangeStats,
}

/// A binding (explicit ones; the API adds the default exchange's).
#[derive(Debug, Clone)]
pub struct BindingView {
    /// Its vhost.
    pub vhost: Arc<str>,
    /// The source exchange.
    pub source: ShortStr,
    /// The destination's name.
    pub destination: ShortStr,
    /// The destination is a queue (else an exchange).
    pub to_queue: bool,
    /// Binding key.
    pub routing_key: ShortStr,
    /// Binding arguments.
    pub arguments: FieldTable,
}

/// A client connection.
#[derive(Debug, Clone)]
pub struct ConnView {
    /// The core's id (the API names connections by peer/local address).
    pub id: ConnId,
    /// Authenticated user.
    pub user: String,
    /// Its vhost.
    pub vhost: Arc<str>,
    /// Client address.
    pub peer: Option<SocketAddr>,
    /// Our address.
    pub local: Option<SocketAddr>,
    /// connection.start-ok's client properties.
    pub client_properties: crate::tables::EncodedTable,
    /// Handshake time, ms since the epoch.
    pub connected_at_ms: u64,
    /// Negotiated frame_max.
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated heartbeat, seconds.
    pub heartbeat_s: u16,
    /// SASL mechanism.
    pub auth_mechanism: &'static str,
    /// Open channels.
    pub channels: u32,
    /// The broker sent connection.close.
    pub closing: bool,
    /// Publishing is blocked by the alarm.
    pub blocked: bool,
    /// (recv_oct, recv_cnt, send_oct, send_cnt).
    pub io: (u64, u64, u64, u64),
}

/// A channel.
#[derive(Debug, Clone)]
pub struct ChannelView {
    /// Its connection.
    pub conn: ConnId,
    /// Channel number.
    pub number: u16,
    /// basic.qos global=false prefetch.
    pub prefetch_count: u32,
    /// basic.qos global=true prefetch.
    pub global_prefetch_count: u32,
    /// Unacknowledged deliveries.
    pub unacked: u32,
    /// Publishes waiting for their confirm.
    pub unconfirmed: u32,
    /// Confirm mode.
    pub confirm: bool,
    /// Transactional.
    pub transactional: bool,
    /// Publishes buffered in the open transaction.
    pub uncommitted: u32,
    /// Consumers on the channel.
    pub consumers: u32,
    /// The broker sent channel.close.
    pub closing: bool,
    /// Message counters.
    pub stats: ChannelStats,
}

/// A consumer.
#[derive(Debug, Clone)]
pub struct ConsumerView {
    /// Its connection and channel.
    pub conn: ConnId,
    pub channel: u16,
    /// Consumer tag.
    pub tag: ShortStr,
    /// The queue's vhost and name.
    pub vhost: Arc<str>,
    pub queue: ShortStr,
    /// Acks required (not no-ack).
    pub ack_required: bool,
    /// Per-consumer prefetch.
    pub prefetch: u32,
    /// Exclusive consumer.
    pub exclusive: bool,
    /// `x-priority`.
    pub priority: i64,
    /// Receives deliveries (false for waiting single-active consumers).
    pub active: bool,
}

/// Everything the API shows, as of `taken_at_ms`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When it was taken, ms since the epoch.
    pub taken_at_ms: u64,
    /// Vhost names, sorted.
    pub vhosts: Vec<Arc<str>>,
    /// Every queue.
    pub queues: Vec<QueueView>,
    /// Every exchange, the default one included.
    pub exchanges: Vec<ExchangeView>,
    /// Every explicit binding.
    pub bindings: Vec<BindingView>,
    /// Client connections (management sessions excluded).
    pub connections: Vec<ConnView>,
    /// Their channels.
    pub channels: Vec<ChannelView>,
    /// Every consumer.
    pub consumers: Vec<ConsumerView>,
    /// The resource alarm's reason, if raised.
    pub alarm: Option<String>,
    /// Policies and parameters (`params.rs`).
    pub params: crate::params::Params,
    /// Broker-wide counters that never decrease (`global_stats.rs`).
    pub global: crate::global_stats::GlobalStats,
}

impl Broker {
    /// Copies the state the management API shows (see the module doc).
    pub(crate) fn build_snapshot(&self) -> Snapshot {
        // Queues keep monotonic times; the API shows wall-clock ones.
        let (wall, mono) = (crate::delayed::wall_ms(), crate::message::now_ms());
        let mut s = Snapshot {
            taken_at_ms: wall,
            alarm: self.sessions.alarm.clone(),
            params: self.params.clone(),
            global: self.global,
            ..Default::default()
        };
        // Unacked counts per queue, from the channels that hold them.
        let mut unacked: FxHashMap<(&str, &ShortStr), u64> = FxHashMap::default();
        for (&id, c) in &self.sessions.conns {
            for number in c.channels.keys() {
                let Some(ch) = c.channels.get(&number) else {
                    continue;
                };
                for u in &ch.unacked {
                    *unacked.entry((&c.info.vhost, &u.queue)).or_default() += 1;
                }
                if c.internal {
                    continue;
                }
                s.channels.push(ChannelView {
                    conn: id,
                    number,
                    prefetch_count: ch.prefetch_consumer,
                    global_prefetch_count: ch.prefetch_channel,
                    unacked: u32::try_from(ch.unacked.len()).unwrap_or(u32::MAX),
                    unconfirmed: u32::try_from(ch.confirm_pending.len()).unwrap_or(u32::MAX),
                    confirm: ch.confirm,
                    transactional: ch.tx.is_some(),
                    uncommitted: ch
                        .tx
                        .as_ref()
                        .map_or(0, |t| u32::try_from(t.publishes.len()).unwrap_or(u32::MAX)),
                    consumers: u32::try_from(ch.consumers.len()).unwrap_or(u32::MAX),
                    closing: ch.closing,
                    stats: ch.stats,
                });
            }
            if c.internal {
                continue;
            }
            let d = &c.info.details;
            s.connections.push(ConnView {
                id,
                user: c.info.user.clone(),
                vhost: c.info.vhost.clone(),
                peer: d.peer,
                local: d.local,
                client_properties: d.client_properties.clone(),
                connected_at_ms: d.connected_at_ms,
                frame_max: c.info.frame_max,
                channel_max: c.info.channel_max,
                heartbeat_s: d.heartbeat_s,
                auth_mechanism: d.auth_mechanism,
                channels: u32::try_from(c.channels.len()).unwrap_or(u32::MAX),
                closing: c.closing,
                blocked: self.sessions.alarm.is_some() && c.publish_blocked,
                io: c.info.sink.io().map(|io| io.read()).unwrap_or_default(),
            });
        }
        for (vkey, v) in &self.topology.vhosts {
            let vhost = vkey.0.clone();
            s.vhosts.push(vhost.clone());
            for ex in v.exchanges.values() {
                s.exchanges.push(ExchangeView {
                    vhost: vhost.clone(),
                    name: ex.name.clone(),
                    kind: ex.type_name(),
                    durable: ex.durable,
                    auto_delete: ex.auto_delete,
                    internal: ex.internal,
                    arguments: ex.arguments.clone(),
                    stats: ex.stats,
                });
                for b in ex.bindings.iter() {
                    s.bindings.push(BindingView {
                        vhost: vhost.clone(),
                        source: ex.name.clone(),
                        destination: b.destination.name().clone(),
                        to_queue: matches!(b.destination, Destination::Queue(_)),
                        routing_key: b.routing_key.clone(),
                        arguments: b.arguments.clone(),
                    });
                }
            }
            for q in v.queues.values() {
                s.queues.push(QueueView {
                    vhost: vhost.clone(),
                    name: q.name.clone(),
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    exclusive_owner: q.exclusive_owner,
                    arguments: q.arguments.clone(),
                    kind: if q.kind.is_quorum() {
                        "quorum"
                    } else {
                        "classic"
                    },
                    ready: u64::from(q.message_count()),
                    unacked: unacked.get(&(&*vkey.0, &q.name)).copied().unwrap_or(0),
                    ready_bytes: q.ready_bytes,
                    consumers: q.consumer_count(),
                    last_used_ms: wall.saturating_sub(mono.saturating_sub(q.last_used_ms)),
                    stats: q.stats,
                });
                for (i, k) in q.consumers.iter().enumerate() {
                    let Some(c) = self.sessions.conns.get(&k.conn) else {
                        continue;
                    };
                    let Some(cc) = c
                        .channels
                        .get(&k.channel)
                        .and_then(|ch| ch.consumers.get(&k.tag))
                    else {
                        continue;
                    };
                    let sac = q.limits.single_active_consumer;
                    s.consumers.push(ConsumerView {
                        conn: k.conn,
                        channel: k.channel,
                        tag: k.tag.clone(),
                        vhost: vhost.clone(),
                        queue: q.name.clone(),
                        ack_required: !k.no_ack,
                        prefetch: cc.prefetch,
                        exclusive: q.exclusive_consumer,
                        priority: k.priority,
                        active: !sac || i == 0,
                    });
                }
            }
        }
        s.vhosts.sort();
        s
    }
}
