//! basic.publish: the fast path from the read buffer, the general path
//! (checks, routing, mandatory returns), the publish cache, and tx buffering.

use amqp_codec::{peek_delivery_mode, peek_expiration, reply, BasicProperties, Name, ShortStr};
use bytes::Bytes;

use crate::assembly::Assembly;
use crate::broker::Broker;
use crate::delivery::{write_content, ContentMethod};
use crate::enqueue::Incoming;
use crate::error::{no_connection, no_exchange, vhost_gone, AmqpError};
use crate::ops::permit::{check_publish, check_topic};
use crate::queue_args::parse_expiration;
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
    pub(crate) fn as_ref(&self) -> PublishRef<'_> {
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
        let Some(c) = self.sessions.conns.get(&conn) else {
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
        self.sessions.mark_dirty(conn);
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
            .batch
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
        let Broker {
            sessions: crate::broker::Sessions { conns, .. },
            topology: crate::broker::Topology { vhosts, .. },
            access,
            ..
        } = self;
        let c = conns.get_mut(&conn).ok_or_else(no_connection)?;
        let vname = c.info.vhost.clone();
        let chan = c
            .channels
            .get_mut(&ch)
            .ok_or_else(|| AmqpError::channel_error("expected 'channel.open'"))?;
        let (in_tx, confirming) = (chan.tx.is_some(), chan.confirm);
        // The one publish check (the fast path reaches it through here).
        let topic_rule = check_publish(
            access,
            &c.info.user,
            &vname,
            &mut chan.write_permitted,
            p.exchange,
        )
        .map_err(|e| e.during(60, 40))?;
        chan.stats.publish += 1;
        let v = vhosts.get_mut(Name::new(&vname)).ok_or_else(vhost_gone)?;
        match v.exchanges.get_mut(Name::new(p.exchange)) {
            None => return Err(no_exchange(p.exchange, &vname).during(60, 40)),
            Some(ex) if ex.internal => {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{}' in vhost '{vname}'",
                    p.exchange
                ))
                .during(60, 40))
            }
            Some(ex) if ex.kind == crate::exchange::ExchangeKind::Topic => {
                check_topic(
                    topic_rule.as_deref(),
                    true,
                    p.routing_key,
                    p.exchange,
                    &vname,
                    &c.info.user,
                )
                .map_err(|e| e.during(60, 40))?;
                ex.stats.publish_in += 1;
            }
            Some(ex) => ex.stats.publish_in += 1,
        }
        if let Some(uid) = peek_user_id(p.properties) {
            let user = &c.info.user;
            // The `impersonator` tag may publish with another user's id.
            if uid != *user && !access.has_tag(user, "impersonator") {
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
            let limit = self.config.tx_uncommitted_bytes_max;
            if let Some(tx) = self.sessions.channel_mut(conn, ch)?.tx.as_mut() {
                let bytes = p.exchange.len() + p.routing_key.len() + p.properties.len();
                tx.admit(bytes + p.body.len(), limit)
                    .map_err(|e| e.during(60, 40))?;
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
        let c = self.sessions.channel_mut(conn, ch)?;
        c.publish_seq += 1;
        self.global.received_confirm += 1;
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
        let confirm_tag = self.next_confirm_tag(conn, ch, self.batch.publish_cache.confirming)?;
        self.batch.publish_cache.hits += 1;
        // Taken out for the call and put back: enqueueing never clears
        // the cache (only errors and other frames do, after this returns).
        let targets = std::mem::take(&mut self.batch.publish_cache.targets);
        let vhost = std::mem::take(&mut self.batch.publish_cache.vhost);
        let result = self.enqueue_routed(conn, ch, &vhost, p, &targets);
        self.batch.publish_cache.targets = targets;
        self.batch.publish_cache.vhost = vhost;
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
    pub(crate) fn route_and_enqueue(
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
            .topology
            .vhosts
            .get(Name::new(vname))
            .ok_or_else(vhost_gone)?;
        let mut targets = std::mem::take(&mut self.batch.scratch_targets);
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
            self.flush_publish_hits();
            let (ex, rk) = (p.exchange, p.routing_key);
            self.batch
                .publish_cache
                .fill(conn, ch, ex, rk, vname, confirming, &targets);
        }
        let result = self.enqueue_routed(conn, ch, vname, p, &targets);
        targets.clear();
        self.batch.scratch_targets = targets;
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
            .topology
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

    /// Adds the publishes served from the publish cache since it was filled
    /// to their exchange's and channel's counters: one lookup per run of
    /// publishes, not per message.
    pub(crate) fn flush_publish_hits(&mut self) {
        let Broker {
            batch,
            topology,
            sessions,
            ..
        } = self;
        let Some(h) = batch.publish_cache.take_hits() else {
            return;
        };
        if let Some(ex) = topology
            .vhosts
            .get_mut(Name::new(h.vhost))
            .and_then(|v| v.exchanges.get_mut(Name::new(h.exchange)))
        {
            ex.stats.publish_in += h.count;
        }
        if let Some(ch) = sessions
            .conns
            .get_mut(&h.conn)
            .and_then(|c| c.channels.get_mut(&h.channel))
        {
            ch.stats.publish += h.count;
        }
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
        self.global.observe_size(p.body.len());
        if targets.is_empty() {
            if p.mandatory {
                self.global.unroutable_returned += 1;
            } else {
                self.global.unroutable_dropped += 1;
            }
            // The unroutable path (rare) may afford the lookup.
            if let Some(ex) = self
                .topology
                .vhosts
                .get_mut(Name::new(vname))
                .and_then(|v| v.exchanges.get_mut(Name::new(p.exchange)))
            {
                ex.stats.unroutable += 1;
            }
            if p.mandatory {
                if let Some(c) = self.sessions.conns.get_mut(&conn) {
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
        self.global.routed += 1;
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
