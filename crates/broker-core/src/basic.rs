//! basic.* methods, publisher confirms and transactions.

use amqp_codec::{
    peek_delivery_mode, peek_expiration, reply, BasicConsume, BasicGet, BasicProperties, BasicQos,
    Method, Name, ShortStr,
};
use bytes::Bytes;

use crate::broker::{Assembly, Broker, ChannelConsumer};
use crate::delivery::{write_content, write_view, ContentMethod};
use crate::enqueue::Incoming;
use crate::error::AmqpError;
use crate::manage::{locked, no_exchange, no_queue};
use crate::queue::ConsumerRef;
use crate::queue_args::parse_expiration;
use crate::quorum::{write_view_counted, ReturnCause};
use crate::ConnId;

/// A complete publish, borrowed from the frames (or the read buffer) it
/// arrived in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishRef<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub mandatory: bool,
    pub immediate: bool,
    pub properties: &'a [u8],
    pub body: &'a [u8],
    /// From `properties`: delivery-mode and expiration (read once).
    pub delivery_mode: Option<u8>,
    pub expiration: Option<&'a str>,
}

impl<'a> PublishRef<'a> {
    /// A publish from parts, reading the properties it needs.
    pub fn new(
        exchange: &'a str,
        routing_key: &'a str,
        mandatory: bool,
        immediate: bool,
        properties: &'a [u8],
        body: &'a [u8],
    ) -> Self {
        PublishRef {
            exchange,
            routing_key,
            mandatory,
            immediate,
            properties,
            body,
            delivery_mode: peek_delivery_mode(properties),
            expiration: peek_expiration(properties),
        }
    }
}

/// What `Broker::publish_from_wire` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireOutcome {
    /// Nothing: take the general path for these frames.
    NotTaken,
    Done,
    /// Done, and it raised a channel or connection error.
    Raised,
}

/// A publish kept until tx.commit.
pub(crate) struct OwnedPublish {
    exchange: ShortStr,
    routing_key: ShortStr,
    mandatory: bool,
    properties: Bytes,
    body: Bytes,
}

impl OwnedPublish {
    fn as_ref(&self) -> PublishRef<'_> {
        PublishRef::new(
            &self.exchange,
            &self.routing_key,
            self.mandatory,
            false,
            &self.properties,
            &self.body,
        )
    }
}

impl Broker {
    /// A basic.publish read straight from the socket buffer (method, header
    /// and body frames complete in it). `NotTaken`, having done nothing,
    /// when the channel is not in a state for the fast path; the caller
    /// then takes the general frame-by-frame path.
    pub(crate) fn publish_wire(
        &mut self,
        conn: ConnId,
        w: &amqp_codec::WirePublish<'_>,
    ) -> WireOutcome {
        let max = self.config.message_size_max_bytes;
        let Some(c) = self.conns.get(&conn) else {
            return WireOutcome::NotTaken;
        };
        if c.closing {
            return WireOutcome::NotTaken;
        }
        let Some(ch) = c.channels.get(&w.channel) else {
            return WireOutcome::NotTaken;
        };
        if ch.closing {
            // Waiting for close-ok: discarded, as the general path does.
            return WireOutcome::Done;
        }
        if (w.body.len() as u64) > max || !matches!(ch.assembly, Assembly::Idle) {
            return WireOutcome::NotTaken;
        }
        self.mark_dirty(conn);
        let p = PublishRef {
            exchange: w.exchange,
            routing_key: w.routing_key,
            mandatory: w.mandatory,
            immediate: w.immediate,
            properties: w.properties,
            body: w.body,
            delivery_mode: w.delivery_mode,
            expiration: w.expiration,
        };
        let result = if self
            .publish_cache
            .hit(conn, w.channel, w.exchange, w.routing_key)
            && !w.immediate
            && !needs_per_message_checks(w.properties)
        {
            self.publish_cached(conn, w.channel, &p)
        } else {
            self.publish(conn, w.channel, &p)
        };
        match result {
            Ok(()) => WireOutcome::Done,
            Err(err) => {
                self.raise(conn, w.channel, err);
                WireOutcome::Raised
            }
        }
    }

    /// A complete basic.publish (method + header + body) arrived.
    pub(crate) fn publish(
        &mut self,
        conn: ConnId,
        ch: u16,
        p: &PublishRef<'_>,
    ) -> Result<(), AmqpError> {
        // One connection lookup for what the checks below need.
        let Broker { conns, vhosts, .. } = self;
        let c = conns
            .get_mut(&conn)
            .ok_or_else(|| AmqpError::internal("no connection"))?;
        c.has_published = true;
        let vname = c.info.vhost.clone();
        let (in_tx, confirming) = c
            .channels
            .get(&ch)
            .map_or((false, false), |chan| (chan.tx.is_some(), chan.confirm));
        let v = vhosts
            .get(Name::new(&vname))
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        match v.exchanges.get(Name::new(p.exchange)) {
            None => return Err(no_exchange(p.exchange, &vname).during(60, 40)),
            Some(ex) if ex.internal => {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{}' in vhost '{vname}'",
                    p.exchange
                ))
                .during(60, 40))
            }
            Some(_) => {}
        }
        if let Some(uid) = peek_user_id(p.properties) {
            let user = &c.info.user;
            if uid != *user {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{uid}' but authenticated user was '{user}'"
                ))
                .during(60, 40));
            }
        }
        if p.immediate {
            return Err(AmqpError::not_implemented("immediate=true").during(60, 40));
        }
        let rewritten = self.reply_to_rewrite(conn, ch, p.properties)?;
        let p = match &rewritten {
            Some(props) => PublishRef {
                properties: props,
                ..*p
            },
            None => *p,
        };
        // The channel is looked up again only in tx or confirm mode.
        if in_tx {
            if let Some(tx) = self.channel_mut(conn, ch)?.tx.as_mut() {
                tx.publishes.push(OwnedPublish {
                    exchange: ShortStr::from(p.exchange),
                    routing_key: ShortStr::from(p.routing_key),
                    mandatory: p.mandatory,
                    properties: Bytes::copy_from_slice(p.properties),
                    body: Bytes::copy_from_slice(p.body),
                });
            }
            return Ok(());
        }
        let confirm_tag = self.next_confirm_tag(conn, ch, confirming)?;
        // Cacheable unless the properties need per-message checks.
        let fill = (!needs_per_message_checks(p.properties)).then_some(confirming);
        let (seq, rejected) = self.route_and_enqueue(conn, ch, &vname, &p, fill)?;
        if let Some(tag) = confirm_tag {
            self.confirm(conn, ch, tag, seq, !rejected);
        }
        Ok(())
    }

    /// The publish's confirm tag when the channel is in confirm mode.
    fn next_confirm_tag(
        &mut self,
        conn: ConnId,
        ch: u16,
        confirming: bool,
    ) -> Result<Option<u64>, AmqpError> {
        if !confirming {
            return Ok(None);
        }
        let c = self.channel_mut(conn, ch)?;
        c.publish_seq += 1;
        Ok(Some(c.publish_seq))
    }

    /// A publish like the one `publish_cache` remembers: its checks and
    /// routing hold (see `publish_cache.rs`), so only the per-message work
    /// is left.
    fn publish_cached(
        &mut self,
        conn: ConnId,
        ch: u16,
        p: &PublishRef<'_>,
    ) -> Result<(), AmqpError> {
        let confirm_tag = self.next_confirm_tag(conn, ch, self.publish_cache.confirming)?;
        // Taken out for the call and put back: enqueueing never clears
        // the cache (only errors and other frames do, after this returns).
        let targets = std::mem::take(&mut self.publish_cache.targets);
        let vhost = std::mem::take(&mut self.publish_cache.vhost);
        let result = self.enqueue_routed(conn, ch, &vhost, p, &targets);
        self.publish_cache.targets = targets;
        self.publish_cache.vhost = vhost;
        let (seq, rejected) = result?;
        if let Some(tag) = confirm_tag {
            self.confirm(conn, ch, tag, seq, !rejected);
        }
        Ok(())
    }

    /// Routes one message, stores it if it is persistent and reaches durable
    /// queues, enqueues it, returns it if mandatory and unroutable. Returns
    /// the store seq that must be durable before the publish is confirmed.
    /// `fill`: remember the checks and routing for the next publishes of
    /// this run (with whether the channel confirms), if routing allows.
    fn route_and_enqueue(
        &mut self,
        conn: ConnId,
        ch: u16,
        vname: &std::sync::Arc<str>,
        p: &PublishRef<'_>,
        fill: Option<bool>,
    ) -> Result<(u64, bool), AmqpError> {
        if p.exchange.is_empty() && crate::reply_to::is_reply_name(p.routing_key) {
            let m = Incoming {
                exchange: p.exchange,
                routing_key: p.routing_key,
                properties: p.properties,
                body: p.body,
            };
            if self.reply_to_deliver(&m) {
                return Ok((0, false));
            }
        }
        let v = self
            .vhosts
            .get(Name::new(vname))
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        let mut targets = std::mem::take(&mut self.scratch_targets);
        targets.clear();
        let raw = p.properties;
        let mut used_headers = false;
        let mut headers = || {
            used_headers = true;
            BasicProperties::decode(&Bytes::copy_from_slice(raw))
                .ok()
                .and_then(|p| p.headers)
        };
        // Empty (no allocation) unless a delayed exchange keeps the message.
        let mut delays = Vec::new();
        let dedup = v.route_delayed(
            p.exchange,
            p.routing_key,
            &mut headers,
            &mut targets,
            &mut delays,
        );
        // A deduplicating exchange (the one published to) routes a
        // duplicate nowhere; never cached (it read the headers).
        if dedup && self.exchange_drops_duplicate(vname, p) {
            targets.clear();
            delays.clear();
        }
        if let (Some(confirming), false) = (fill, used_headers) {
            let (ex, rk) = (p.exchange, p.routing_key);
            self.publish_cache
                .fill(conn, ch, ex, rk, vname, confirming, &targets);
        }
        let result = self.enqueue_routed(conn, ch, vname, p, &targets);
        targets.clear();
        self.scratch_targets = targets;
        if delays.is_empty() {
            return result;
        }
        let (mut seq, mut rejected) = result?;
        let m = Incoming {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties: p.properties,
            body: p.body,
        };
        for (ex, delay) in delays {
            let (s, r) = self.delay_message(vname, &ex, &m, p.delivery_mode == Some(2), delay);
            seq = seq.max(s);
            rejected |= r;
        }
        Ok((seq, rejected))
    }

    /// Whether the exchange `p` is published to deduplicates and has seen
    /// this message's key (which it then remembers if not).
    fn exchange_drops_duplicate(&mut self, vname: &str, p: &PublishRef<'_>) -> bool {
        let Some(ex) = self
            .vhosts
            .get_mut(Name::new(vname))
            .and_then(|v| v.exchanges.get_mut(Name::new(p.exchange)))
        else {
            return false;
        };
        let Some(d) = ex.dedup.as_mut() else {
            return false;
        };
        let headers = BasicProperties::decode(&Bytes::copy_from_slice(p.properties))
            .ok()
            .and_then(|p| p.headers);
        d.is_duplicate(headers.as_ref())
    }

    /// Second half of `route_and_enqueue`, once the targets are known.
    fn enqueue_routed(
        &mut self,
        conn: ConnId,
        ch: u16,
        vname: &str,
        p: &PublishRef<'_>,
        targets: &[ShortStr],
    ) -> Result<(u64, bool), AmqpError> {
        let m = Incoming {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties: p.properties,
            body: p.body,
        };
        if targets.is_empty() {
            if p.mandatory {
                if let Some(c) = self.conns.get_mut(&conn) {
                    let frame_max = c.info.frame_max;
                    let method = ContentMethod::Return {
                        reply_code: reply::NO_ROUTE,
                        reply_text: "NO_ROUTE",
                    };
                    write_content(&mut c.out, ch, method, &m, frame_max);
                }
            }
            return Ok((0, false));
        }
        let persistent = p.delivery_mode == Some(2);
        let expiration = match p.expiration {
            None => None,
            Some(e) => Some(
                parse_expiration(e)
                    .map_err(|t| AmqpError::precondition_failed(t).during(60, 40))?,
            ),
        };
        let r = self.enqueue(vname, targets, &m, persistent, expiration);
        // RabbitMQ nacks a publish that any queue refused.
        Ok((r.seq, r.rejected))
    }

    /// Records a publish to confirm (`ack`) or refuse once `seq` is durable
    /// (0 = at once). Confirms leave in publish order.
    fn confirm(&mut self, conn: ConnId, ch: u16, tag: u64, seq: u64, ack: bool) {
        let synced = self.synced_seq;
        let Ok(c) = self.channel_mut(conn, ch) else {
            return;
        };
        if seq <= synced && c.confirm_pending.is_empty() {
            let first = c.confirm_ready.is_empty();
            c.confirm_ready.push((tag, ack));
            if first {
                self.confirm_dirty.push((conn, ch));
            }
        } else {
            c.confirm_pending.push_back((tag, seq, ack));
            self.waiting_sync.insert((conn, ch));
        }
    }

    /// Sends the confirms that became ready in this batch: runs of acks as
    /// one basic.ack with `multiple`, refusals as single basic.nacks.
    pub(crate) fn emit_ready_confirms(&mut self) {
        let mut dirty = std::mem::take(&mut self.confirm_dirty);
        for (conn, id) in dirty.drain(..) {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.closing {
                continue;
            }
            let Some(ch) = c.channels.get_mut(&id) else {
                continue;
            };
            if ch.confirm_ready.is_empty() {
                continue;
            }
            self.dirty.push(conn);
            let id = &id;
            {
                let mut last_ack = None;
                for (tag, ack) in ch.confirm_ready.drain(..) {
                    if ack {
                        last_ack = Some(tag);
                        continue;
                    }
                    if let Some(t) = last_ack.take() {
                        amqp_codec::encode_method_frame(
                            &mut c.out,
                            *id,
                            &Method::BasicAck(amqp_codec::BasicAck {
                                delivery_tag: t,
                                multiple: true,
                            }),
                        );
                    }
                    amqp_codec::encode_method_frame(
                        &mut c.out,
                        *id,
                        &Method::BasicNack(amqp_codec::BasicNack {
                            delivery_tag: tag,
                            multiple: false,
                            requeue: false,
                        }),
                    );
                }
                if let Some(t) = last_ack {
                    amqp_codec::encode_method_frame(
                        &mut c.out,
                        *id,
                        &Method::BasicAck(amqp_codec::BasicAck {
                            delivery_tag: t,
                            multiple: true,
                        }),
                    );
                }
            }
        }
    }

    pub(crate) fn tx_commit(&mut self, conn: ConnId, ch: u16) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let c = self.channel_mut(conn, ch)?;
        let Some(tx) = c.tx.as_mut() else {
            return Err(AmqpError::precondition_failed(
                "channel is not transactional",
            ));
        };
        let tx = std::mem::take(tx);
        let mut wait = 0;
        for p in &tx.publishes {
            wait = wait.max(
                self.route_and_enqueue(conn, ch, &vname, &p.as_ref(), None)?
                    .0,
            );
        }
        let settled = !tx.settles.is_empty();
        for (tag, multiple, ack, requeue) in tx.settles {
            self.settle_now(conn, ch, tag, multiple, ack, requeue)?;
        }
        if settled {
            // commit-ok promises the acks are durable too: an acked
            // persistent message must never come back after a crash.
            wait = wait.max(self.persist.last_seq());
        }
        if wait > self.synced_seq {
            self.channel_mut(conn, ch)?.commit_wait = Some(wait);
            self.waiting_sync.insert((conn, ch));
        } else {
            self.send(conn, ch, &Method::TxCommitOk(Default::default()));
        }
        Ok(())
    }

    pub(crate) fn basic_qos(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: BasicQos,
    ) -> Result<(), AmqpError> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        let c = self.channel_mut(conn, ch)?;
        if m.global {
            c.prefetch_channel = u32::from(m.prefetch_count);
        } else {
            c.prefetch_consumer = u32::from(m.prefetch_count);
        }
        self.send(conn, ch, &Method::BasicQosOk(Default::default()));
        // A raised limit may let held messages go.
        self.dispatch_channel(conn, ch);
        Ok(())
    }

    pub(crate) fn basic_consume(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: BasicConsume,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let qname = self.resolve_queue_name(conn, ch, m.queue)?;
        let tag = if m.consumer_tag.is_empty() {
            let r = self.random();
            ShortStr::from(format!("amq.ctag-{:016x}{:08x}", r, conn as u32))
        } else {
            m.consumer_tag
        };
        if qname.as_str() == crate::reply_to::REPLY_QUEUE {
            return self.reply_to_consume(conn, ch, tag, m.no_ack, m.no_wait);
        }
        let max = self.config.consumers_per_channel_max;
        let q = self.queue_ref(&vname, &qname)?;
        if q.exclusive_owner.is_some_and(|owner| owner != conn) {
            return Err(locked(&qname, &vname));
        }
        let priority = consumer_priority(&m.arguments, &qname, &vname)?;
        if q.kind.is_quorum() && self.channel_mut(conn, ch)?.prefetch_channel != 0 {
            // RabbitMQ 3.10 quorum queues refuse a channel-wide prefetch.
            return Err(AmqpError::not_implemented(format!(
                "queue '{qname}' in vhost '{vname}' does not support global qos"
            )));
        }
        let q = self.queue_ref(&vname, &qname)?;
        // An exclusive consumer is refused on a single-active-consumer queue
        // even with no consumers (RabbitMQ 3.10).
        if q.exclusive_consumer
            || (m.exclusive && (!q.consumers.is_empty() || q.limits.single_active_consumer))
        {
            return Err(AmqpError::access_refused(format!(
                "queue '{qname}' in vhost '{vname}' in exclusive use"
            )));
        }
        let c = self.channel_mut(conn, ch)?;
        if c.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if c.consumers.len() >= max {
            return Err(AmqpError::not_allowed(format!(
                "too many consumers on channel (max {max})"
            )));
        }
        let prefetch = c.prefetch_consumer;
        let tag = tag.detached();
        c.consumers.insert(
            tag.clone(),
            ChannelConsumer {
                queue: qname.detached(),
                no_ack: m.no_ack,
                prefetch,
                unacked: 0,
            },
        );
        let q = self.queue_mut(&vname, &qname)?;
        q.add_consumer(ConsumerRef {
            conn,
            channel: ch,
            tag: tag.clone(),
            no_ack: m.no_ack,
            priority,
        });
        q.had_consumer = true;
        q.last_used_ms = crate::message::now_ms();
        q.exclusive_consumer = m.exclusive;
        if !m.no_wait {
            self.send(
                conn,
                ch,
                &Method::BasicConsumeOk(amqp_codec::BasicConsumeOk { consumer_tag: tag }),
            );
        }
        self.dispatch(&vname, &qname);
        Ok(())
    }

    pub(crate) fn basic_cancel(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: amqp_codec::BasicCancel,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let c = self.channel_mut(conn, ch)?;
        if c.reply_consumer
            .as_ref()
            .is_some_and(|(t, _)| *t == m.consumer_tag)
        {
            c.reply_consumer = None;
        }
        if let Some(k) = c.consumers.remove(&m.consumer_tag) {
            if let Some(q) = self
                .vhosts
                .get_mut(&*vname)
                .and_then(|v| v.queues.get_mut(&k.queue))
            {
                q.remove_consumer(conn, ch, &m.consumer_tag);
            }
            self.maybe_auto_delete_queue(&vname, &k.queue);
        }
        if !m.no_wait {
            self.send(
                conn,
                ch,
                &Method::BasicCancelOk(amqp_codec::BasicCancelOk {
                    consumer_tag: m.consumer_tag,
                }),
            );
        }
        Ok(())
    }

    pub(crate) fn basic_get(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: BasicGet,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let qname = self.resolve_queue_name(conn, ch, m.queue)?;
        // Field-level borrow: the arena is used alongside the queue below.
        let q = self
            .vhosts
            .get_mut(&*vname)
            .and_then(|v| v.queues.get_mut(&qname))
            .ok_or_else(|| no_queue(&qname, &vname))?;
        if q.exclusive_owner.is_some_and(|owner| owner != conn) {
            return Err(locked(&qname, &vname));
        }
        q.last_used_ms = crate::message::now_ms();
        let now = crate::message::now_ms();
        let durable = q.durable;
        let consumer_timeout_ms = q.limits.consumer_timeout_ms;
        let mut expired = Vec::new();
        while let Some(m) = q.pop_expired(now, false, self.arena.as_ref()) {
            expired.push(m);
        }
        let popped = q.pop(self.arena.as_ref());
        let remaining = q.message_count();
        // Quorum queues put x-delivery-count on every get-ok, 0 included.
        let count = match popped {
            Some(msg) if q.kind.is_quorum() => {
                let n = q.delivery_count(msg);
                if m.no_ack {
                    q.forget_delivery_count(msg);
                }
                Some(n)
            }
            _ => None,
        };
        for m in expired {
            self.dead_letter(&vname, &qname, m, "expired");
        }
        let Some(msg) = popped else {
            self.send(conn, ch, &Method::BasicGetEmpty(Default::default()));
            return Ok(());
        };
        let timeout_on = crate::consumer_timeout::timeout_for(
            consumer_timeout_ms,
            self.config.consumer_timeout_ms,
        )
        .is_some();
        let Broker {
            conns,
            arena,
            timeout_watch,
            ..
        } = self;
        let c = conns
            .get_mut(&conn)
            .ok_or_else(|| AmqpError::internal("no connection"))?;
        let frame_max = c.info.frame_max;
        let chan = c
            .channels
            .get_mut(&ch)
            .ok_or_else(|| AmqpError::channel_error("channel gone"))?;
        let tag = chan.next_delivery_tag;
        chan.next_delivery_tag += 1;
        if let Some(view) = arena.get(msg.loc()) {
            let method = ContentMethod::GetOk {
                delivery_tag: tag,
                redelivered: msg.redelivered(),
                message_count: remaining,
            };
            match count {
                Some(n) => write_view_counted(&mut c.out, ch, method, &view, frame_max, n),
                None => write_view(&mut c.out, ch, method, &view, frame_max),
            }
        }
        if m.no_ack {
            self.settle_message(&vname, &qname, durable, msg);
        } else {
            if timeout_on {
                crate::consumer_timeout::watch(timeout_watch, &mut chan.timeout_watched, conn, ch);
            }
            chan.unacked.push_back(crate::broker::Unacked {
                tag,
                queue: qname,
                msg,
                consumer: None,
                delivered_ms: if timeout_on { now } else { 0 },
            });
        }
        Ok(())
    }

    /// basic.ack / nack / reject; buffered when the channel is transactional.
    pub(crate) fn settle(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: u64,
        multiple: bool,
        ack: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let c = self.channel_mut(conn, ch)?;
        if let Some(tx) = c.tx.as_mut() {
            // Validate now so an unknown tag fails at once, as in RabbitMQ.
            let known = (multiple && tag == 0) || c.unacked.iter().any(|u| u.tag == tag);
            if !known {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            tx.settles.push((tag, multiple, ack, requeue));
            return Ok(());
        }
        self.settle_now(conn, ch, tag, multiple, ack, requeue)
    }

    pub(crate) fn settle_now(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: u64,
        multiple: bool,
        ack: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let c = self.channel_mut(conn, ch)?;
        let taken: Vec<crate::broker::Unacked> = if multiple {
            if tag != 0 && !c.unacked.iter().any(|u| u.tag == tag) {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            let upto = if tag == 0 { u64::MAX } else { tag };
            let n = c.unacked.partition_point(|u| u.tag <= upto);
            c.unacked.drain(..n).collect()
        } else {
            let Ok(i) = c.unacked.binary_search_by_key(&tag, |u| u.tag) else {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {tag}"
                )));
            };
            c.unacked.remove(i).into_iter().collect()
        };
        let touched = self.release_quiet(
            conn,
            ch,
            &vname,
            taken,
            ack || !requeue,
            requeue && !ack,
            !ack && !requeue,
        );
        for q in touched {
            self.dispatch(&vname, &q);
        }
        Ok(())
    }

    /// Finishes unacked deliveries: `drop` removes them (ack, or
    /// nack/reject without requeue; `rejected` dead-letters them),
    /// `requeue` puts them back. Returns the queues touched; the caller
    /// re-dispatches them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn release_quiet(
        &mut self,
        conn: ConnId,
        ch: u16,
        vname: &str,
        taken: Vec<crate::broker::Unacked>,
        drop: bool,
        requeue: bool,
        rejected: bool,
    ) -> Vec<ShortStr> {
        let mut touched: Vec<ShortStr> = Vec::new();
        for u in taken {
            if let Some(k) = u.consumer.as_ref().and_then(|t| {
                self.conns
                    .get_mut(&conn)?
                    .channels
                    .get_mut(&ch)?
                    .consumers
                    .get_mut(t)
            }) {
                k.unacked = k.unacked.saturating_sub(1);
            }
            let Some(q) = self
                .vhosts
                .get_mut(vname)
                .and_then(|v| v.queues.get_mut(&u.queue))
            else {
                // Its queue was deleted meanwhile: only the arena holds it.
                self.arena.release(u.msg.loc());
                continue;
            };
            if requeue && q.kind.is_quorum() {
                let qn = u.queue.clone();
                self.return_to_quorum(vname, &qn, u.msg, ReturnCause::Settled);
            } else if requeue {
                q.requeue(u.msg, self.arena.as_ref());
            } else if drop && !rejected {
                q.forget_delivery_count(u.msg);
                let durable = q.durable;
                self.settle_message(vname, &u.queue, durable, u.msg);
            } else if drop {
                let qn = u.queue.clone();
                self.dead_letter(vname, &qn, u.msg, "rejected");
            }
            if !touched.contains(&u.queue) {
                touched.push(u.queue);
            }
        }
        touched
    }

    /// Requeues the channel's unacked messages; recover-ok (if `reply`) goes
    /// out before the redeliveries, as RabbitMQ orders them.
    pub(crate) fn basic_recover(
        &mut self,
        conn: ConnId,
        ch: u16,
        requeue: bool,
        reply: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let vname = self.vhost_of(conn)?;
        let c = self.channel_mut(conn, ch)?;
        let taken: Vec<_> = c.unacked.drain(..).collect();
        let touched = self.release_quiet(conn, ch, &vname, taken, false, true, false);
        if reply {
            self.send(conn, ch, &Method::BasicRecoverOk(Default::default()));
        }
        for q in touched {
            self.dispatch(&vname, &q);
        }
        Ok(())
    }
}

/// The `x-priority` argument of basic.consume (default 0), validated as
/// RabbitMQ 3.10 does (check_int_arg: any integer type).
fn consumer_priority(
    args: &amqp_codec::FieldTable,
    qname: &str,
    vname: &str,
) -> Result<i64, AmqpError> {
    match args.get("x-priority") {
        None => Ok(0),
        Some(v) => v.as_i64().ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid arg 'x-priority' for queue '{qname}' in vhost '{vname}': \"expected integer, got {}\"",
                crate::queue_args::type_name(v)
            ))
        }),
    }
}

/// Whether a publish with these properties needs checks that depend on the
/// message itself (user-id against the login, reply-to rewriting), so it
/// neither fills nor uses the publish cache.
fn needs_per_message_checks(raw: &[u8]) -> bool {
    amqp_codec::property_flags(raw)
        .is_none_or(|f| f & (amqp_codec::FLAG_USER_ID | amqp_codec::FLAG_REPLY_TO) != 0)
}

/// The user_id property, if set (decoding only when the flag bit is present).
fn peek_user_id(raw: &[u8]) -> Option<String> {
    if amqp_codec::property_flags(raw)? & amqp_codec::FLAG_USER_ID == 0 {
        return None;
    }
    BasicProperties::decode(&Bytes::copy_from_slice(raw))
        .ok()?
        .user_id
        .map(|u| u.to_string())
}
