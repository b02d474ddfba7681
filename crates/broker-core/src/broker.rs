//! The broker's state and its entry points, called by the server with the
//! state lock held.

use amqp_codec::{encode_method_frame, Method, Name, ShortStr};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::auth::Users;
use crate::config::CoreConfig;
use crate::error::AmqpError;
use crate::persist::{Persistence, Seq};
use crate::session::{Channel, Conn};
use crate::vhost::Vhost;
use crate::ConnId;

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
    pub(crate) next_conn: ConnId,
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

    /// Appends a method frame to a connection's output.
    pub(crate) fn send(&mut self, conn: ConnId, ch_id: u16, method: &Method) {
        if let Some(c) = self.conns.get_mut(&conn) {
            encode_method_frame(&mut c.out, ch_id, method);
            self.dirty.push(conn);
        }
    }

    /// Passes all produced output to the connections' sinks. The server
    /// calls this after every batch, before releasing the lock.
    pub(crate) fn flush_output(&mut self) {
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
    pub(crate) fn synced(&mut self, seq: Seq) {
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

    /// The store failed: nack everything waiting for it.
    pub(crate) fn store_failed(&mut self) {
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
                self.close_connection(conn, err);
            }
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
