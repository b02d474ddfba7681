//! Session state: connections, their channels, consumers as a channel
//! sees them (credit), unacked deliveries, transactions.

use std::collections::VecDeque;
use std::sync::Arc;

use amqp_codec::{encode_method_frame, Method, ShortStr};
use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;

use crate::assembly::Assembly;
use crate::error::{no_connection, AmqpError};
use crate::message::QueuedMessage;
use crate::persist::Seq;
use crate::ConnId;

/// Where the core's output for one connection goes (the server's writer).
pub trait ConnSink: Send + Sync {
    /// Queues encoded frames for the socket. Must not block.
    fn send(&self, bytes: Bytes);
    /// Bytes handed to `send` that are not yet written to the socket.
    fn pending_bytes(&self) -> usize;
    /// The socket's octet counters, if the sink keeps them (kept beside
    /// the socket rather than in an allocation of their own: memory per
    /// connection).
    fn io(&self) -> Option<&crate::stats::IoCounters> {
        None
    }
}

/// What the server learned about a connection during the handshake.
pub struct ConnInfo {
    /// The authenticated user name.
    pub user: String,
    /// Shared so the hot path can name the vhost without allocating.
    pub vhost: std::sync::Arc<str>,
    /// Negotiated frame_max (bytes, overhead included).
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Client advertised `consumer_cancel_notify`.
    pub consumer_cancel_notify: bool,
    /// Client advertised `connection.blocked`.
    pub connection_blocked: bool,
    /// Where this connection's output goes.
    pub sink: Arc<dyn ConnSink>,
    /// What the management API shows about it (peer, client properties...).
    pub details: ConnDetails,
}

/// What the management API shows about a connection beyond what the core
/// needs; set by the server's handshake, read only by `inspect.rs`.
#[derive(Debug, Default, Clone)]
pub struct ConnDetails {
    /// The client's address.
    pub peer: Option<std::net::SocketAddr>,
    /// Our address of the connection.
    pub local: Option<std::net::SocketAddr>,
    /// connection.start-ok's client properties.
    pub client_properties: crate::tables::EncodedTable,
    /// When the handshake finished, ms since the epoch.
    pub connected_at_ms: u64,
    /// Negotiated heartbeat, seconds.
    pub heartbeat_s: u16,
    /// SASL mechanism used (PLAIN, AMQPLAIN).
    pub auth_mechanism: &'static str,
}

/// A connection as the core sees it.
pub(crate) struct Conn {
    /// What the handshake settled.
    pub info: ConnInfo,
    /// Its open channels, by number. Boxed: a `Channel` is a few hundred bytes and most connections have
    /// one or two, so the table stays small (memory per connection).
    pub channels: crate::channel_table::ChannelTable,
    /// Frames produced but not yet passed to the sink.
    pub out: BytesMut,
    /// Set once the core sent connection.close: everything else is ignored.
    pub closing: bool,
    /// Exclusive queues this connection owns (deleted when it goes).
    pub exclusive_queues: Vec<ShortStr>,
    /// A delivery was held back because the socket was full.
    pub throttled: bool,
    /// A basic.publish arrived while the alarm was raised (RabbitMQ's
    /// `should_block`): it was left unread, the client got
    /// connection.blocked (if it asked for it) and the server reads nothing
    /// more from this connection until the alarm clears.
    pub publish_blocked: bool,
    /// A management API session (`direct.rs`), not a client: not listed.
    pub internal: bool,
}

/// A message delivered on a channel and not yet acknowledged.
pub(crate) struct Unacked {
    /// Its delivery tag on the channel.
    pub tag: u64,
    /// The queue it came from.
    pub queue: ShortStr,
    /// The message (location, position, redelivered flag).
    pub msg: QueuedMessage,
    /// None for basic.get deliveries.
    pub consumer: Option<ShortStr>,
    /// When it was delivered (ms since the epoch; 0 when no consumer
    /// timeout applies), for the acknowledgement timeout.
    pub delivered_ms: u64,
}

/// A consumer as its channel sees it: its credit.
pub(crate) struct ChannelConsumer {
    /// The queue it consumes from.
    pub queue: ShortStr,
    /// Deliveries are settled when sent.
    pub no_ack: bool,
    /// Per-consumer prefetch (0 = unlimited).
    pub prefetch: u32,
    /// Its deliveries not yet settled.
    pub unacked: u32,
}

/// Work buffered by a transactional channel until tx.commit.
#[derive(Default)]
pub(crate) struct Tx {
    /// Publishes, in order, to route at commit.
    pub publishes: Vec<crate::ops::publish::OwnedPublish>,
    /// (delivery_tag, multiple, ack=true|reject, requeue)
    pub settles: Vec<(u64, bool, bool, bool)>,
    /// What `publishes` and `settles` hold, as `Tx::admit` counts it.
    pub held_bytes: usize,
}

/// Bookkeeping counted per buffered publish besides its bytes.
const TX_PUBLISH_OVERHEAD_BYTES: usize = 96;

impl Tx {
    /// Counts `bytes` more (a publish's contents, or 0 for a settlement)
    /// against `limit_bytes`: the one check of `tx_uncommitted_bytes_max`.
    pub fn admit(&mut self, bytes: usize, limit_bytes: usize) -> Result<(), AmqpError> {
        let cost = if bytes == 0 {
            std::mem::size_of::<(u64, bool, bool, bool)>()
        } else {
            bytes + TX_PUBLISH_OVERHEAD_BYTES
        };
        let held = self.held_bytes.saturating_add(cost);
        if held > limit_bytes {
            return Err(crate::error::tx_too_large(limit_bytes));
        }
        self.held_bytes = held;
        Ok(())
    }
}

/// An open channel.
pub(crate) struct Channel {
    /// The core sent channel.close and awaits close-ok (all else dropped).
    pub closing: bool,
    /// Content being received (see `assembly.rs`).
    pub assembly: Assembly,
    /// Tag of the next delivery or get-ok.
    pub next_delivery_tag: u64,
    /// Deliveries awaiting settlement, ordered by tag.
    pub unacked: VecDeque<Unacked>,
    /// Its consumers by tag, with their credit.
    pub consumers: FxHashMap<ShortStr, ChannelConsumer>,
    /// basic.qos global=false: prefetch for consumers created afterwards.
    pub prefetch_consumer: u32,
    /// basic.qos global=true: limit across the channel.
    pub prefetch_channel: u32,
    /// channel.flow: deliveries allowed.
    pub flow_active: bool,
    /// confirm.select was sent: publishes are confirmed.
    pub confirm: bool,
    /// Last publish sequence number handed out in confirm mode.
    pub publish_seq: u64,
    /// Confirms waiting for the store: (publish seq, store seq, ack), in order.
    pub confirm_pending: VecDeque<(u64, Seq, bool)>,
    /// Confirms ready to send at the next flush: (publish seq, ack).
    pub confirm_ready: Vec<(u64, bool)>,
    /// tx.select was sent: the buffered transaction.
    pub tx: Option<Tx>,
    /// tx.commit-ok waiting for this store seq to be durable.
    pub commit_wait: Option<Seq>,
    /// Last queue declared on the channel, for methods naming queue "".
    pub last_queue: Option<ShortStr>,
    /// Direct reply-to consumer: (consumer tag, secret in the reply name).
    pub reply_consumer: Option<(ShortStr, u64)>,
    /// The channel is listed in `Sessions::timeout_watch`.
    pub timeout_watched: bool,
    /// Exchanges this channel may publish to, as last checked (see
    /// `ops/permit.rs::check_publish`).
    pub write_permitted: crate::ops::permit::PublishPermits,
    /// Message counts for the management API (`stats.rs`).
    pub stats: crate::stats::ChannelStats,
}

impl Channel {
    pub fn new() -> Channel {
        Channel {
            closing: false,
            assembly: Assembly::Idle,
            next_delivery_tag: 1,
            unacked: VecDeque::new(),
            consumers: FxHashMap::default(),
            prefetch_consumer: 0,
            prefetch_channel: 0,
            flow_active: true,
            confirm: false,
            publish_seq: 0,
            confirm_pending: VecDeque::new(),
            confirm_ready: Vec::new(),
            tx: None,
            commit_wait: None,
            last_queue: None,
            reply_consumer: None,
            timeout_watched: false,
            write_permitted: Default::default(),
            stats: Default::default(),
        }
    }
}

/// The sessions part: every connection (with its channels, consumers'
/// credit and unacked deliveries) and what must be flushed.
pub(crate) struct Sessions {
    /// Open connections. Boxed so the table (which grows by doubling)
    /// stays small per connection.
    pub conns: FxHashMap<ConnId, Box<Conn>>,
    /// Id of the next connection.
    pub next_conn: ConnId,
    /// Connections that may have output to flush (duplicates allowed), so a
    /// flush costs O(active connections), not O(all connections).
    pub dirty: Vec<ConnId>,
    /// Flush every connection at the next flush (rare events; safety net).
    pub flush_all: bool,
    /// Channels that got unacked deliveries under a consumer timeout: the
    /// only ones the tick checks (see `consumer_timeout.rs`).
    pub timeout_watch: Vec<(ConnId, u16)>,
    /// Why publishing is blocked (low disk, failed store), if it is.
    pub alarm: Option<String>,
    /// Open connections of each user (for user limits).
    pub by_user: FxHashMap<String, Vec<ConnId>>,
    /// Open connections of each vhost (for vhost limits and vhost deletion).
    pub by_vhost: FxHashMap<Arc<str>, Vec<ConnId>>,
}

impl Sessions {
    /// No connections.
    pub fn new() -> Sessions {
        Sessions {
            conns: FxHashMap::default(),
            next_conn: 1,
            dirty: Vec::new(),
            flush_all: false,
            timeout_watch: Vec::new(),
            alarm: None,
            by_user: FxHashMap::default(),
            by_vhost: FxHashMap::default(),
        }
    }

    /// Records a new connection in the per-user and per-vhost lists.
    pub fn track(&mut self, id: ConnId, user: &str, vhost: &Arc<str>) {
        self.by_user.entry(user.to_string()).or_default().push(id);
        self.by_vhost.entry(vhost.clone()).or_default().push(id);
    }

    /// Removes a forgotten connection from the per-user and per-vhost lists.
    pub fn untrack(&mut self, id: ConnId, user: &str, vhost: &str) {
        fn drop_id<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
            m: &mut FxHashMap<K, Vec<ConnId>>,
            key: &str,
            id: ConnId,
        ) {
            if let Some(v) = m.get_mut(key) {
                v.retain(|c| *c != id);
                if v.is_empty() {
                    m.remove(key);
                }
            }
        }
        drop_id(&mut self.by_user, user, id);
        drop_id(&mut self.by_vhost, vhost, id);
    }

    /// Connections of `user` open now.
    pub fn user_connections(&self, user: &str) -> usize {
        self.by_user.get(user).map_or(0, Vec::len)
    }

    /// Connections to `vhost` open now.
    pub fn vhost_connections(&self, vhost: &str) -> usize {
        self.by_vhost.get(vhost).map_or(0, Vec::len)
    }

    /// Channels of `user` open now, over all its connections: O(its connections).
    pub fn user_channels(&self, user: &str) -> usize {
        self.by_user.get(user).map_or(0, |ids| {
            ids.iter()
                .filter_map(|id| self.conns.get(id))
                .map(|c| c.channels.len())
                .sum()
        })
    }

    /// Notes that `conn` may have output to flush.
    #[inline]
    pub fn mark_dirty(&mut self, conn: ConnId) {
        mark_dirty(&mut self.dirty, conn);
    }

    /// Open channel `ch_id` of `conn`, or the 504 for a channel not open.
    pub fn channel_mut(&mut self, conn: ConnId, ch_id: u16) -> Result<&mut Channel, AmqpError> {
        self.conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&ch_id))
            .ok_or_else(|| AmqpError::channel_error("expected 'channel.open'"))
    }

    /// True if the core closed channel `ch_id` and awaits its close-ok.
    pub fn channel_is_closing(&self, conn: ConnId, ch_id: u16) -> bool {
        self.conns
            .get(&conn)
            .and_then(|c| c.channels.get(&ch_id))
            .is_some_and(|ch| ch.closing)
    }

    /// True once the core has sent connection.close on `conn` (or forgot it).
    pub fn is_closing(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_none_or(|c| c.closing)
    }

    /// The vhost `conn` is connected to.
    pub fn vhost_of(&self, conn: ConnId) -> Result<Arc<str>, AmqpError> {
        self.conns
            .get(&conn)
            .map(|c| c.info.vhost.clone())
            .ok_or_else(no_connection)
    }

    /// True while an alarm is raised and `conn` tried to publish under it.
    pub fn should_pause_reading(&self, conn: ConnId) -> bool {
        self.alarm.is_some() && self.conns.get(&conn).is_some_and(|c| c.publish_blocked)
    }

    /// Appends a method frame to a connection's output.
    pub fn send(&mut self, conn: ConnId, ch_id: u16, method: &Method) {
        if let Some(c) = self.conns.get_mut(&conn) {
            encode_method_frame(&mut c.out, ch_id, method);
            self.dirty.push(conn);
        }
    }

    /// Lets the caller write frames into a connection's output.
    pub fn write_raw(&mut self, conn: ConnId, f: impl FnOnce(&mut BytesMut)) {
        if let Some(c) = self.conns.get_mut(&conn) {
            f(&mut c.out);
            self.dirty.push(conn);
        }
    }

    /// Passes the output of every dirty connection (or of all, after a
    /// broadcast) to its sink.
    pub fn flush(&mut self) {
        let send = |c: &mut Conn| {
            if !c.out.is_empty() {
                let bytes = c.out.split().freeze();
                c.info.sink.send(bytes);
            }
        };
        if std::mem::take(&mut self.flush_all) {
            self.conns.values_mut().for_each(|c| send(c));
            self.dirty.clear();
            return;
        }
        for id in self.dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(&id) {
                send(c);
            }
        }
    }
}

/// Adds `conn` to the connections to flush unless it is one of the last two
/// added: a publisher and its consumer alternate (publish, deliver, publish,
/// ...), and each extra entry costs `flush` a lookup. Duplicates further
/// back are harmless (the second flush finds nothing to send).
#[inline]
pub(crate) fn mark_dirty(dirty: &mut Vec<ConnId>, conn: ConnId) {
    let n = dirty.len();
    if n > 0 && dirty[n - 1] == conn || n > 1 && dirty[n - 2] == conn {
        return;
    }
    dirty.push(conn);
}
