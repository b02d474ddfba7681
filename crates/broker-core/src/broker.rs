//! The broker's state and its entry points, called by the server with the
//! state lock held.

use std::collections::VecDeque;
use std::sync::Arc;

use amqp_codec::{
    encode_method_frame, ContentHeader, Frame, Method, Name, ShortStr, FRAME_BODY, FRAME_HEADER,
    FRAME_HEARTBEAT, FRAME_METHOD,
};
use bytes::{Bytes, BytesMut};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::auth::Users;
use crate::config::CoreConfig;
use crate::error::AmqpError;
use crate::message::QueuedMessage;
use crate::persist::{Persistence, Seq};
use crate::vhost::Vhost;
use crate::ConnId;

/// Where the core's output for one connection goes (the server's writer).
pub trait ConnSink: Send + Sync {
    /// Queues encoded frames for the socket. Must not block.
    fn send(&self, bytes: Bytes);
    /// Bytes handed to `send` that are not yet written to the socket.
    fn pending_bytes(&self) -> usize;
}

/// What the server learned about a connection during the handshake.
pub struct ConnInfo {
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
    pub sink: Arc<dyn ConnSink>,
}

/// A connection as the core sees it.
pub(crate) struct Conn {
    pub info: ConnInfo,
    /// Boxed: a `Channel` is a few hundred bytes and most connections have
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
    /// The connection has published: it is the kind an alarm blocks.
    pub has_published: bool,
}

/// Content being assembled from method, header and body frames.
pub(crate) enum Assembly {
    Idle,
    Header(amqp_codec::BasicPublish),
    Body {
        publish: amqp_codec::BasicPublish,
        header: ContentHeader,
        parts: Vec<Bytes>,
        received: u64,
    },
}

/// A message delivered on a channel and not yet acknowledged.
pub(crate) struct Unacked {
    pub tag: u64,
    pub queue: ShortStr,
    pub msg: QueuedMessage,
    /// None for basic.get deliveries.
    pub consumer: Option<ShortStr>,
    /// When it was delivered (ms since the epoch; 0 when no consumer
    /// timeout applies), for the acknowledgement timeout.
    pub delivered_ms: u64,
}

/// A consumer as its channel sees it: its credit.
pub(crate) struct ChannelConsumer {
    pub queue: ShortStr,
    pub no_ack: bool,
    /// Per-consumer prefetch (0 = unlimited).
    pub prefetch: u32,
    pub unacked: u32,
}

/// Work buffered by a transactional channel until tx.commit.
#[derive(Default)]
pub(crate) struct Tx {
    pub publishes: Vec<crate::basic::OwnedPublish>,
    /// (delivery_tag, multiple, ack=true|reject, requeue)
    pub settles: Vec<(u64, bool, bool, bool)>,
}

pub(crate) struct Channel {
    pub closing: bool,
    pub assembly: Assembly,
    pub next_delivery_tag: u64,
    /// Ordered by tag.
    pub unacked: VecDeque<Unacked>,
    pub consumers: FxHashMap<ShortStr, ChannelConsumer>,
    /// basic.qos global=false: prefetch for consumers created afterwards.
    pub prefetch_consumer: u32,
    /// basic.qos global=true: limit across the channel.
    pub prefetch_channel: u32,
    pub flow_active: bool,
    pub confirm: bool,
    /// Last publish sequence number handed out in confirm mode.
    pub publish_seq: u64,
    /// Confirms waiting for the store: (publish seq, store seq, ack), in order.
    pub confirm_pending: VecDeque<(u64, Seq, bool)>,
    /// Confirms ready to send at the next flush: (publish seq, ack).
    pub confirm_ready: Vec<(u64, bool)>,
    pub tx: Option<Tx>,
    /// tx.commit-ok waiting for this store seq to be durable.
    pub commit_wait: Option<Seq>,
    /// Last queue declared on the channel, for methods naming queue "".
    pub last_queue: Option<ShortStr>,
    /// Direct reply-to consumer: (consumer tag, secret in the reply name).
    pub reply_consumer: Option<(ShortStr, u64)>,
    /// The channel is listed in `Broker::timeout_watch`.
    pub timeout_watched: bool,
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
        }
    }
}

pub struct Broker {
    pub(crate) config: CoreConfig,
    pub(crate) vhosts: FxHashMap<crate::vhost::VhostKey, Vhost>,
    /// Boxed so the table (which grows by doubling) stays small per connection.
    pub(crate) conns: FxHashMap<ConnId, Box<Conn>>,
    pub(crate) users: Users,
    pub(crate) persist: Box<dyn Persistence>,
    /// Contents of every queued message; queues hold locations into it.
    pub(crate) arena: Box<dyn crate::arena::Arena>,
    /// Highest store seq known durable.
    pub(crate) synced_seq: Seq,
    /// Channels with confirms or a commit waiting on the store.
    pub(crate) waiting_sync: FxHashSet<(ConnId, u16)>,
    next_conn: ConnId,
    /// State of the generator behind server-named queues and consumer tags.
    pub(crate) rng: u64,
    /// Current nesting of dead-letter republishing (bounded).
    pub(crate) dead_letter_depth: u32,
    /// Why publishing is blocked (low disk, failed store), if it is.
    pub(crate) alarm: Option<String>,
    /// Connections that may have output to flush (duplicates allowed), so a
    /// flush costs O(active connections), not O(all connections).
    pub(crate) dirty: Vec<ConnId>,
    /// Flush every connection at the next flush (rare events; safety net).
    pub(crate) flush_all: bool,
    /// Channels with confirms ready to emit.
    pub(crate) confirm_dirty: Vec<(ConnId, u16)>,
    /// Reused per publish for routing results / accepted queues, so the
    /// hot path does not allocate.
    pub(crate) scratch_targets: Vec<ShortStr>,
    pub(crate) scratch_accepted: Vec<usize>,
    /// Queues that received messages since the last dispatch run. A run of
    /// publishes (the common batch from one socket read) enqueues first and
    /// delivers once per queue, instead of one dispatch pass per message;
    /// anything else that could observe the queues runs the dispatch first
    /// (see `run_pending_dispatch`), so no client sees the difference.
    pub(crate) pending_dispatch: Vec<(std::sync::Arc<str>, ShortStr)>,
    /// The last publish's checks and routing, valid within a run of
    /// publishes (see `publish_cache.rs`).
    pub(crate) publish_cache: crate::publish_cache::PublishCache,
    /// Channels that got unacked deliveries under a consumer timeout: the
    /// only ones the tick checks (see `consumer_timeout.rs`).
    pub(crate) timeout_watch: Vec<(ConnId, u16)>,
}

impl Broker {
    pub fn new(
        config: CoreConfig,
        persist: Box<dyn Persistence>,
        arena: Box<dyn crate::arena::Arena>,
    ) -> Broker {
        let mut vhosts = FxHashMap::default();
        vhosts.insert(crate::vhost::VhostKey("/".into()), Vhost::new());
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5eed);
            h.finish() | 1
        };
        Broker {
            config,
            vhosts,
            conns: FxHashMap::default(),
            users: Users::default(),
            persist,
            arena,
            synced_seq: 0,
            waiting_sync: FxHashSet::default(),
            next_conn: 1,
            rng: seed,
            dead_letter_depth: 0,
            alarm: None,
            dirty: Vec::new(),
            flush_all: false,
            confirm_dirty: Vec::new(),
            scratch_targets: Vec::new(),
            scratch_accepted: Vec::new(),
            pending_dispatch: Vec::new(),
            publish_cache: Default::default(),
            timeout_watch: Vec::new(),
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn vhost_exists(&self, name: &str) -> bool {
        self.vhosts.contains_key(name)
    }

    /// Checks PLAIN or AMQPLAIN credentials; returns the user name.
    pub fn authenticate(
        &self,
        mechanism: &str,
        response: &[u8],
        from_loopback: bool,
    ) -> Result<String, AmqpError> {
        self.users.authenticate(mechanism, response, from_loopback)
    }

    /// Registers a connection that finished its handshake.
    pub fn open_connection(&mut self, info: ConnInfo) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        let mut out = BytesMut::new();
        if let (Some(reason), true) = (&self.alarm, info.connection_blocked) {
            encode_method_frame(
                &mut out,
                0,
                &Method::ConnectionBlocked(amqp_codec::ConnectionBlocked {
                    reason: ShortStr::from(truncate(reason)),
                }),
            );
        }
        self.conns.insert(
            id,
            Box::new(Conn {
                has_published: false,
                info,
                channels: Default::default(),
                out,
                closing: false,
                exclusive_queues: Vec::new(),
                throttled: false,
            }),
        );
        id
    }

    /// True once the core has sent connection.close on this connection.
    pub fn is_closing(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_none_or(|c| c.closing)
    }

    /// Forgets a connection: requeues its unacked messages, removes its
    /// consumers and deletes its exclusive queues.
    pub fn remove_connection(&mut self, conn: ConnId) {
        self.run_pending_dispatch();
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let channels: Vec<u16> = c.channels.keys().collect();
        for ch in channels {
            self.cleanup_channel(conn, ch);
        }
        if let Some(mut c) = self.conns.remove(&conn) {
            if !c.out.is_empty() {
                c.info.sink.send(c.out.split().freeze());
            }
            let vhost = c.info.vhost.clone();
            for q in c.exclusive_queues {
                self.delete_queue_internal(&vhost, &q);
            }
        }
        self.waiting_sync.retain(|(c, _)| *c != conn);
    }

    /// The client sent connection.close: what its earlier frames produced
    /// (deliveries, ready confirms) goes out first, then close-ok as the
    /// last frame (nothing is delivered to a closing connection), then the
    /// connection is forgotten.
    pub fn client_closed(&mut self, conn: ConnId) {
        self.run_pending_dispatch();
        self.emit_ready_confirms();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.closing = true;
        let channels: Vec<u16> = c.channels.keys().collect();
        for ch in channels {
            self.cleanup_channel(conn, ch);
        }
        self.send(conn, 0, &Method::ConnectionCloseOk(Default::default()));
        self.remove_connection(conn);
    }

    /// Sends connection.close with `err` and stops processing this connection.
    pub fn close_connection_with(&mut self, conn: ConnId, err: AmqpError) {
        self.run_pending_dispatch();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        self.dirty.push(conn);
        tracing::info!(conn, code = err.code, text = %err.text, "closing connection");
        encode_method_frame(
            &mut c.out,
            0,
            &Method::ConnectionClose(amqp_codec::ConnectionClose {
                reply_code: err.code,
                reply_text: ShortStr::from(truncate(&err.text)),
                class_id: err.class_id,
                method_id: err.method_id,
            }),
        );
        // Release what the connection held right away; the socket closes
        // after close-ok or a timeout.
        let channels: Vec<u16> = c.channels.keys().collect();
        for ch in channels {
            self.cleanup_channel(conn, ch);
        }
    }

    /// Handles one frame on a channel other than 0.
    pub fn handle_frame(&mut self, conn: ConnId, frame: Frame) {
        if !is_publish_part(&frame) {
            self.run_pending_dispatch();
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        self.mark_dirty(conn);
        let ch = frame.channel;
        if let Err(err) = self.handle_frame_inner(conn, frame) {
            self.raise(conn, ch, err);
        }
    }

    /// Notes that `conn` may have output to flush.
    pub(crate) fn mark_dirty(&mut self, conn: ConnId) {
        if self.dirty.last() != Some(&conn) {
            self.dirty.push(conn);
        }
    }

    /// Schedules delivery from queue `q` of vhost `vname` (see
    /// `pending_dispatch`).
    pub(crate) fn defer_dispatch(&mut self, vname: &str, q: &ShortStr) {
        // A short list is searched for the pair; a long one (fan-out to
        // many queues) just grows, which costs what dispatching inline did.
        if self.pending_dispatch.len() <= 16
            && self
                .pending_dispatch
                .iter()
                .any(|(v, name)| name == q && amqp_codec::bytes_eq(v.as_bytes(), vname.as_bytes()))
        {
            return;
        }
        let Some((key, _)) = self.vhosts.get_key_value(Name::new(vname)) else {
            return;
        };
        self.pending_dispatch.push((key.0.clone(), q.clone()));
    }

    /// Delivers from every queue that received messages since the last run.
    pub(crate) fn run_pending_dispatch(&mut self) {
        // Whatever runs next may change what a cached publish relied on.
        self.publish_cache.clear();
        while !self.pending_dispatch.is_empty() {
            let mut pending = std::mem::take(&mut self.pending_dispatch);
            for (v, q) in &pending {
                // May dead-letter into other queues, which defers again.
                self.dispatch(v, q);
            }
            pending.clear();
            if self.pending_dispatch.is_empty() {
                self.pending_dispatch = pending;
            }
        }
    }

    fn handle_frame_inner(&mut self, conn: ConnId, frame: Frame) -> Result<(), AmqpError> {
        let ch_id = frame.channel;
        match frame.kind {
            FRAME_METHOD => {
                let method = Method::decode(frame.payload).map_err(|e| AmqpError {
                    code: e.reply_code(),
                    text: e.reply_text(),
                    class_id: 0,
                    method_id: 0,
                })?;
                self.handle_method_frame(conn, ch_id, method)
            }
            FRAME_HEADER | FRAME_BODY if self.channel_is_closing(conn, ch_id) => {
                // Waiting for close-ok: content is discarded like methods.
                Ok(())
            }
            FRAME_HEADER => self.handle_header_frame(conn, ch_id, frame.payload),
            FRAME_BODY => self.handle_body_frame(conn, ch_id, frame.payload),
            FRAME_HEARTBEAT => Err(AmqpError::unexpected_frame("type 8, all octets = <<>>")),
            other => Err(AmqpError::frame_error(format!(
                "unknown frame type {other}"
            ))),
        }
    }

    fn handle_method_frame(
        &mut self,
        conn: ConnId,
        ch_id: u16,
        method: Method,
    ) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or_else(|| AmqpError::internal("no connection"))?;
        let channel_max = c.info.channel_max;
        let Some(ch) = c.channels.get_mut(&ch_id) else {
            // RabbitMQ limits how many are open at once, not numbers, and
            // checks it for any method on a channel it does not know.
            let open = c.channels.len();
            if channel_max != 0 && open >= usize::from(channel_max) {
                return Err(AmqpError::not_allowed(format!(
                    "number of channels opened ({open}) has reached the \
                     negotiated channel_max ({channel_max})"
                )));
            }
            if let Method::ChannelOpen(_) = method {
                c.channels.insert(ch_id, Box::new(Channel::new()));
                encode_method_frame(
                    &mut c.out,
                    ch_id,
                    &Method::ChannelOpenOk(Default::default()),
                );
                return Ok(());
            }
            return Err(
                AmqpError::channel_error("expected 'channel.open'").during(class_id, method_id)
            );
        };
        if ch.closing {
            // Waiting for close-ok: RabbitMQ drops everything else. A
            // client close that crossed ours is answered, and the channel
            // stays closing: the client's close-ok for ours follows.
            match method {
                Method::ChannelCloseOk(_) => {
                    c.channels.remove(&ch_id);
                }
                Method::ChannelClose(_) => {
                    encode_method_frame(
                        &mut c.out,
                        ch_id,
                        &Method::ChannelCloseOk(Default::default()),
                    );
                }
                _ => {}
            }
            return Ok(());
        }
        match ch.assembly {
            Assembly::Idle => {}
            Assembly::Header(_) => {
                return Err(AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                )
                .during(60, 40))
            }
            Assembly::Body { .. } => {
                return Err(AmqpError::unexpected_frame(
                    "expected content body, got non content body frame instead",
                )
                .during(60, 40))
            }
        }
        if let Method::BasicPublish(p) = method {
            ch.assembly = Assembly::Header(p);
            return Ok(());
        }
        self.handle_method(conn, ch_id, method)
            .map_err(|e| e.during(class_id, method_id))
    }

    fn handle_header_frame(
        &mut self,
        conn: ConnId,
        ch_id: u16,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        let max = self.config.message_size_max_bytes;
        let ch = self.channel_mut(conn, ch_id)?;
        let publish = match std::mem::replace(&mut ch.assembly, Assembly::Idle) {
            Assembly::Header(p) => p,
            other => {
                ch.assembly = other;
                return Err(AmqpError::unexpected_frame(
                    "expected method frame, got non method frame instead",
                ));
            }
        };
        let header = ContentHeader::decode(payload).map_err(|e| AmqpError {
            code: e.reply_code(),
            text: e.reply_text(),
            class_id: 60,
            method_id: 40,
        })?;
        if header.class_id != 60 {
            return Err(AmqpError::frame_error(format!(
                "content header for class {} does not match method class 60",
                header.class_id
            )));
        }
        if header.body_size > max {
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                header.body_size, max
            ))
            .during(60, 40));
        }
        if header.body_size == 0 {
            return self.publish(conn, ch_id, &publish_ref(&publish, &header, &[]));
        }
        ch.assembly = Assembly::Body {
            publish,
            header,
            parts: Vec::new(),
            received: 0,
        };
        Ok(())
    }

    fn handle_body_frame(
        &mut self,
        conn: ConnId,
        ch_id: u16,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        let ch = self.channel_mut(conn, ch_id)?;
        let (header, parts, received) =
            match &mut ch.assembly {
                Assembly::Body {
                    header,
                    parts,
                    received,
                    ..
                } => (header, parts, received),
                Assembly::Header(_) => return Err(AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                )
                .during(60, 40)),
                Assembly::Idle => {
                    return Err(AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    ))
                }
            };
        *received += payload.len() as u64;
        if *received > header.body_size {
            return Err(AmqpError::frame_error(format!(
                "received body of {} bytes, more than the declared {}",
                received, header.body_size
            )));
        }
        parts.push(payload);
        if *received < header.body_size {
            return Ok(());
        }
        let Assembly::Body {
            publish,
            header,
            mut parts,
            ..
        } = std::mem::replace(&mut ch.assembly, Assembly::Idle)
        else {
            return Ok(());
        };
        let body = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let mut b = BytesMut::with_capacity(header.body_size as usize);
            for p in &parts {
                b.extend_from_slice(p);
            }
            b.freeze()
        };
        self.publish(conn, ch_id, &publish_ref(&publish, &header, &body))
    }

    /// Sends a channel or connection exception.
    pub(crate) fn raise(&mut self, conn: ConnId, ch_id: u16, err: AmqpError) {
        self.publish_cache.clear();
        if err.is_connection_error() || ch_id == 0 {
            self.close_connection_with(conn, err);
            return;
        }
        tracing::debug!(conn, channel = ch_id, code = err.code, text = %err.text, "channel error");
        self.cleanup_channel(conn, ch_id);
        // Raised from any entry point (frames, ticks): the close must go out.
        self.mark_dirty(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(ch) = c.channels.get_mut(&ch_id) else {
            return;
        };
        ch.closing = true;
        encode_method_frame(
            &mut c.out,
            ch_id,
            &Method::ChannelClose(amqp_codec::ChannelClose {
                reply_code: err.code,
                reply_text: ShortStr::from(truncate(&err.text)),
                class_id: err.class_id,
                method_id: err.method_id,
            }),
        );
    }

    /// True if the core closed channel `ch_id` and awaits its close-ok.
    fn channel_is_closing(&self, conn: ConnId, ch_id: u16) -> bool {
        self.conns
            .get(&conn)
            .and_then(|c| c.channels.get(&ch_id))
            .is_some_and(|ch| ch.closing)
    }

    pub(crate) fn channel_mut(
        &mut self,
        conn: ConnId,
        ch_id: u16,
    ) -> Result<&mut Channel, AmqpError> {
        self.conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&ch_id))
            .ok_or_else(|| AmqpError::channel_error("expected 'channel.open'"))
    }

    /// Lets the server write channel-0 frames into a connection's output.
    pub fn send_raw(&mut self, conn: ConnId, f: impl FnOnce(&mut BytesMut)) {
        if let Some(c) = self.conns.get_mut(&conn) {
            f(&mut c.out);
            self.dirty.push(conn);
        }
    }

    /// Appends a method frame to a connection's output.
    pub(crate) fn send(&mut self, conn: ConnId, ch_id: u16, method: &Method) {
        if let Some(c) = self.conns.get_mut(&conn) {
            encode_method_frame(&mut c.out, ch_id, method);
            self.dirty.push(conn);
        }
    }

    /// Passes all produced output to the connections' sinks. The server
    /// calls this after every batch, before releasing the lock.
    pub fn flush(&mut self) {
        self.run_pending_dispatch();
        self.emit_ready_confirms();
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

    /// The store has everything up to `seq` on disk: release confirms and
    /// commit-oks waiting for it.
    pub fn on_synced(&mut self, seq: Seq) {
        self.run_pending_dispatch();
        if seq <= self.synced_seq {
            return;
        }
        self.synced_seq = seq;
        let waiting: Vec<(ConnId, u16)> = self.waiting_sync.iter().copied().collect();
        for (conn, ch_id) in waiting {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            let Some(ch) = c.channels.get_mut(&ch_id) else {
                continue;
            };
            self.dirty.push(conn);
            if !ch.confirm_pending.is_empty() {
                self.confirm_dirty.push((conn, ch_id));
            }
            while let Some(&(tag, s, ack)) = ch.confirm_pending.front() {
                if s > seq {
                    break;
                }
                ch.confirm_pending.pop_front();
                ch.confirm_ready.push((tag, ack));
            }
            if ch.commit_wait.is_some_and(|s| s <= seq) {
                ch.commit_wait = None;
                encode_method_frame(&mut c.out, ch_id, &Method::TxCommitOk(Default::default()));
            }
            if ch.confirm_pending.is_empty() && ch.commit_wait.is_none() {
                self.waiting_sync.remove(&(conn, ch_id));
            }
        }
    }

    /// Store seq the core is waiting to see durable, if any.
    pub fn sync_wanted(&self) -> Option<Seq> {
        let last = self.persist.last_seq();
        (last > self.synced_seq).then_some(last)
    }

    /// Periodic store housekeeping (`Persistence::maintain`); the server
    /// calls it from its ticker.
    pub fn maintain_store(&mut self) {
        self.persist.maintain();
    }

    /// The store failed: nack everything waiting for it.
    pub fn on_store_failed(&mut self) {
        self.run_pending_dispatch();
        let waiting: Vec<(ConnId, u16)> = self.waiting_sync.drain().collect();
        for (conn, ch_id) in waiting {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            let Some(ch) = c.channels.get_mut(&ch_id) else {
                continue;
            };
            self.dirty.push(conn);
            for (tag, _, _) in ch.confirm_pending.drain(..) {
                encode_method_frame(
                    &mut c.out,
                    ch_id,
                    &Method::BasicNack(amqp_codec::BasicNack {
                        delivery_tag: tag,
                        multiple: false,
                        requeue: false,
                    }),
                );
            }
            if ch.commit_wait.take().is_some() {
                let err =
                    AmqpError::internal("store failed; transaction not durable").during(90, 20);
                self.close_connection_with(conn, err);
            }
        }
    }

    /// The writer for `conn` drained its backlog: resume held deliveries.
    pub fn on_writable(&mut self, conn: ConnId) {
        self.run_pending_dispatch();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.throttled {
            return;
        }
        c.throttled = false;
        let vhost = c.info.vhost.clone();
        let queues: Vec<ShortStr> = c
            .channels
            .values()
            .flat_map(|ch| ch.consumers.values().map(|k| k.queue.clone()))
            .collect();
        for q in queues {
            self.dispatch(&vhost, &q);
        }
    }

    /// Raises (`Some(reason)`) or clears (`None`) the resource alarm:
    /// clients that asked for it get connection.blocked / unblocked, and the
    /// server stops reading from connections that publish while it is raised.
    pub fn set_alarm(&mut self, reason: Option<String>) {
        self.run_pending_dispatch();
        if self.alarm == reason {
            return;
        }
        match &reason {
            Some(r) => tracing::warn!("resource alarm: {r}; blocking publishers"),
            None => tracing::info!("resource alarm cleared; unblocking publishers"),
        }
        for c in self.conns.values_mut() {
            if !c.info.connection_blocked || c.closing {
                continue;
            }
            let m = match &reason {
                Some(r) => Method::ConnectionBlocked(amqp_codec::ConnectionBlocked {
                    reason: ShortStr::from(truncate(r)),
                }),
                None => Method::ConnectionUnblocked(amqp_codec::ConnectionUnblocked),
            };
            encode_method_frame(&mut c.out, 0, &m);
        }
        self.flush_all = true;
        self.alarm = reason;
    }

    /// True while an alarm is raised and `conn` is a publisher: the server
    /// then stops reading its socket (as RabbitMQ blocks publishers).
    pub fn should_pause_reading(&self, conn: ConnId) -> bool {
        self.alarm.is_some() && self.conns.get(&conn).is_some_and(|c| c.has_published)
    }

    /// Broker shutdown: closes every connection with 320 CONNECTION_FORCED.
    pub fn close_all(&mut self, text: &str) {
        self.run_pending_dispatch();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close_connection_with(
                id,
                AmqpError::new(amqp_codec::reply::CONNECTION_FORCED, text),
            );
        }
    }

    /// Next pseudo-random u64 (xorshift*), for generated names.
    pub(crate) fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Reply texts are short strings: at most 255 bytes, cut at a char boundary.
fn publish_ref<'a>(
    p: &'a amqp_codec::BasicPublish,
    h: &'a ContentHeader,
    body: &'a [u8],
) -> crate::basic::PublishRef<'a> {
    crate::basic::PublishRef::new(
        &p.exchange,
        &p.routing_key,
        p.mandatory,
        p.immediate,
        &h.raw_properties,
        body,
    )
}

/// A content header or body frame, or a basic.publish method frame: the
/// frames of a publish, which may leave dispatch pending.
fn is_publish_part(f: &Frame) -> bool {
    match f.kind {
        FRAME_HEADER | FRAME_BODY => true,
        FRAME_METHOD => f.payload.get(..4) == Some(&[0, 60, 0, 40]),
        _ => false,
    }
}

pub(crate) fn truncate(s: &str) -> &str {
    if s.len() <= 255 {
        return s;
    }
    let mut end = 255;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
