//! Putting a routed message into queues (length limits, TTL, persistence)
//! and dead-lettering with `x-death`.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Name, ShortStr};
use bytes::Bytes;

use crate::arena::{NewMessage, RecordMeta};
use crate::broker::Broker;
use crate::delivery::deliver_direct;
use crate::message::{now_ms, QueuedMessage};
use crate::persist::{MessageRecord, Seq};
use crate::queue_args::Overflow;

/// Dead-lettering can cascade (a DLX queue that is itself full and
/// dead-letters onward); this bounds the depth so a cycle cannot recurse.
const DEAD_LETTER_DEPTH_MAX: u32 = 8;

/// A message on its way into queues, borrowed from the frames it came in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub properties: &'a [u8],
    pub body: &'a [u8],
}

/// Outcome of enqueueing one message.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enqueued {
    /// Store seq that must be durable before confirming (0 = none).
    pub seq: Seq,
    /// Some queue refused the message (x-overflow reject-publish).
    pub rejected: bool,
    /// Number of queues that took it.
    pub queued: usize,
    /// The store refused it (paused on a full disk, or failed): no queue
    /// took it.
    pub store_refused: bool,
}

impl Broker {
    /// Enqueues a message into `targets` (queue names in `vname`): applies
    /// each queue's length limit, writes it once to the durable store when it
    /// is persistent and reaches durable queues, once to the arena for all
    /// of them, then dispatches.
    pub(crate) fn enqueue(
        &mut self,
        vname: &str,
        targets: &[ShortStr],
        m: &Incoming<'_>,
        persistent: bool,
        expiration_ms: Option<u64>,
    ) -> Enqueued {
        let mut out = Enqueued::default();
        let size = m.body.len() as u64;
        // Indexes into `targets` of the queues that take the message.
        let mut accepted = std::mem::take(&mut self.batch.scratch_accepted);
        accepted.clear();
        let mut refused_dlx: Vec<ShortStr> = Vec::new();
        // A priority queue with consumers is dispatched at once: deferring
        // would let a later, higher-priority message of the same run
        // overtake this one, which a client of RabbitMQ never sees.
        let mut dispatch_now = false;
        // Bit j: the queue of `accepted[j]` has no consumers, so its dispatch
        // would deliver nothing (the delivery loop starts with that test):
        // not scheduled. Positions past 63 are always scheduled.
        let mut idle_queues: u64 = 0;
        let mut dropped: Vec<(ShortStr, QueuedMessage)> = Vec::new();
        let copy = self.batch.republishing > 0;
        let Broker {
            topology: crate::broker::Topology { vhosts, .. },
            durability: crate::broker::Durability { persist, .. },
            sessions: crate::broker::Sessions { conns, dirty, .. },
            arena,
            config,
            ..
        } = self;
        // One vhost lookup for the whole message.
        if let Some(v) = vhosts.get_mut(Name::new(vname)) {
            let mut durable: Vec<&str> = Vec::new();
            // The publish time only matters for TTLs; reading the clock for
            // every message was ~5% of the 16 B profile.
            let mut needs_time = expiration_ms.is_some();
            for (i, t) in targets.iter().enumerate() {
                let Some(q) = v.queues.get_mut(t) else {
                    continue;
                };
                if q.is_full_for(size) && q.limits.overflow != Overflow::DropHead {
                    out.rejected = true;
                    if q.limits.overflow == Overflow::RejectPublishDlx {
                        refused_dlx.push(t.clone());
                    }
                    continue;
                }
                // Deduplicating queue: a duplicate is dropped here, before
                // any fast path (it still counts as accepted for confirms).
                if let Some(d) = q.dedup.as_mut() {
                    let headers = BasicProperties::decode(&Bytes::copy_from_slice(m.properties))
                        .ok()
                        .and_then(|p| p.headers);
                    if d.is_duplicate(headers.as_ref()) {
                        continue;
                    }
                }
                needs_time |= q.limits.message_ttl_ms.is_some();
                // Quorum queues store every message, whatever its delivery mode.
                let stored =
                    (persistent || q.kind.is_quorum()) && q.durable && q.exclusive_owner.is_none();
                // A message for one queue that needs no store record may
                // skip the arena (see `deliver_direct`).
                if targets.len() == 1
                    && !stored
                    && deliver_direct(q, conns, dirty, config.write_buffer_bytes_max, m)
                {
                    q.stats.publish += 1;
                    out.queued = 1;
                    break;
                }
                if stored {
                    durable.push(t.as_str());
                }
                accepted.push(i);
            }
            let mut store_id = 0;
            let mut stored_at = None;
            if !durable.is_empty() {
                let record = MessageRecord {
                    exchange: m.exchange,
                    routing_key: m.routing_key,
                    properties: m.properties,
                    body: m.body,
                };
                let appended = if copy {
                    persist.append_copy(vname, &record, &durable, None)
                } else {
                    persist.append(vname, &record, &durable, None)
                };
                match appended {
                    Ok(a) => {
                        store_id = a.id;
                        out.seq = a.seq;
                        // The store's record is the one copy only when every
                        // queue taking the message is one the store holds it
                        // for: a non-durable queue could outlive those holds,
                        // so a message that also reaches one keeps a full
                        // arena copy (docs/storage.md).
                        if durable.len() == accepted.len() {
                            stored_at = a.at;
                        }
                    }
                    Err(e) => {
                        // The store refuses writes (I/O error, full disk): refuse
                        // the message rather than pretend it is safe. (A copy
                        // is retried where it came from: no log per attempt.)
                        if !copy {
                            tracing::warn!("store refused a persistent message: {e}");
                        }
                        out.rejected = true;
                        out.store_refused = true;
                        accepted.clear();
                    }
                }
            }
            if !accepted.is_empty() {
                let meta = RecordMeta {
                    published_ms: if needs_time { now_ms() } else { 0 },
                    expiration_ms: expiration_ms.unwrap_or(u64::MAX),
                    store_id,
                    persistent,
                };
                let new = NewMessage {
                    meta,
                    exchange: m.exchange,
                    routing_key: m.routing_key,
                    properties: m.properties,
                    body: m.body,
                    stored_at,
                };
                match arena.append(&new, accepted.len() as u32) {
                    Ok(loc) => {
                        for (j, &i) in accepted.iter().enumerate() {
                            let t = &targets[i];
                            let Some(q) = v.queues.get_mut(t) else {
                                arena.release(loc);
                                continue;
                            };
                            q.push(
                                QueuedMessage::new(loc),
                                size,
                                expiration_ms.is_some(),
                                m.properties,
                            );
                            if expiration_ms.is_some() && !q.timed {
                                q.timed = true;
                                v.timed_queues.push(t.clone());
                            }
                            out.queued += 1;
                            q.stats.publish += 1;
                            dispatch_now |= q.is_priority() && !q.consumers.is_empty();
                            if q.consumers.is_empty() && j < 64 {
                                idle_queues |= 1 << j;
                            }
                            while q.is_over_limit() {
                                match q.pop(arena.as_ref()) {
                                    Some(old) => dropped.push((t.clone(), old)),
                                    None => break,
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("message arena refused a message: {e}");
                        out.rejected = true;
                        accepted.clear();
                    }
                }
            }
        }
        for (q, old) in dropped {
            self.dead_letter(vname, &q, old, "maxlen");
        }
        for q in refused_dlx {
            // reject-publish-dlx: only classic queues (quorum refuses it).
            self.global
                .dead_letter(crate::queue_type::QueueType::Classic, "maxlen", true);
            // The publish itself is refused (nacked): nothing is lost.
            let _ = self.dead_letter_new(vname, &q, m, persistent, "maxlen");
        }
        for (j, &i) in accepted.iter().enumerate() {
            if j < 64 && idle_queues & (1 << j) != 0 {
                continue;
            }
            if dispatch_now {
                self.dispatch(vname, &targets[i]);
            } else {
                self.defer_dispatch(vname, &targets[i]);
            }
        }
        accepted.clear();
        self.batch.scratch_accepted = accepted;
        out
    }

    /// A queued message leaves `queue` without being delivered successfully
    /// (rejected, expired, or pushed out by a length limit): it is settled
    /// and, if the queue has a dead-letter exchange, republished there. The
    /// copy is enqueued first; if the store refuses it (paused on a full
    /// disk), the message is not settled but goes back to `queue` where it
    /// was (`Queue::requeue`), to be dead-lettered when it next expires, is
    /// rejected or overflows — as RabbitMQ's at-least-once dead-lettering
    /// keeps it in its source queue: never lost.
    pub(crate) fn dead_letter(
        &mut self,
        vname: &str,
        queue: &ShortStr,
        msg: QueuedMessage,
        reason: &str,
    ) {
        let (has_dlx, kind, durable) = self
            .topology
            .vhosts
            .get_mut(vname)
            .and_then(|v| v.queues.get_mut(queue))
            .map_or((false, crate::queue_type::QueueType::Classic, false), |q| {
                q.forget_delivery_count(msg);
                (q.limits.dead_letter_exchange.is_some(), q.kind, q.durable)
            });
        // Copy out before the arena reference goes.
        let view = has_dlx
            .then(|| {
                crate::arena::full_view(
                    self.arena.as_ref(),
                    self.durability.persist.as_mut(),
                    msg.loc(),
                )
            })
            .flatten()
            .map(|v| {
                (
                    v.exchange.to_string(),
                    v.routing_key.to_string(),
                    v.properties.to_vec(),
                    v.body.to_vec(),
                    v.meta.persistent,
                )
            });
        if let Some((ex, rk, props, body, persistent)) = view {
            let m = Incoming {
                exchange: &ex,
                routing_key: &rk,
                properties: &props,
                body: &body,
            };
            if self.dead_letter_new(vname, queue, &m, persistent, reason) {
                if let Some(q) = self
                    .topology
                    .vhosts
                    .get_mut(vname)
                    .and_then(|v| v.queues.get_mut(queue))
                {
                    q.requeue(msg, self.arena.as_ref());
                    return;
                }
            }
        }
        self.global.dead_letter(kind, reason, has_dlx);
        self.settle_message(vname, queue, durable, msg);
    }

    /// Republishes `m` (which left `queue`) to the queue's dead-letter
    /// exchange with an `x-death` record, as RabbitMQ does. True if the
    /// store (or a delayed exchange) refused the copy: nothing was queued.
    fn dead_letter_new(
        &mut self,
        vname: &str,
        queue: &ShortStr,
        m: &Incoming<'_>,
        persistent: bool,
        reason: &str,
    ) -> bool {
        let Some(q) = self
            .topology
            .vhosts
            .get(vname)
            .and_then(|v| v.queues.get(queue))
        else {
            return false;
        };
        let Some(dlx) = q.limits.dead_letter_exchange.clone() else {
            return false;
        };
        let dlrk = q.limits.dead_letter_routing_key.clone();
        if self.batch.dead_letter_depth >= DEAD_LETTER_DEPTH_MAX {
            tracing::warn!(queue = %queue, "dead-letter chain too deep; dropping message");
            return false;
        }
        let raw = Bytes::copy_from_slice(m.properties);
        let mut props = BasicProperties::decode(&raw).unwrap_or_default();
        let original_expiration = props.expiration.take();
        let mut headers = props.headers.take().unwrap_or_default();
        add_x_death(
            &mut headers,
            queue,
            reason,
            m.exchange,
            m.routing_key,
            original_expiration.as_ref(),
        );
        props.headers = Some(headers);
        let routing_key = dlrk
            .map(|k| k.to_string())
            .unwrap_or_else(|| m.routing_key.to_string());
        let properties = props.to_bytes();
        let mut targets = Vec::new();
        let mut delays = Vec::new();
        if let Some(v) = self.topology.vhosts.get(vname) {
            let raw = properties.clone();
            let mut h = || BasicProperties::decode(&raw).ok().and_then(|p| p.headers);
            v.route_delayed(&dlx, &routing_key, &mut h, &mut targets, &mut delays);
        }
        let mut refused = false;
        self.batch.republishing += 1;
        for (ex, delay) in delays {
            let next = Incoming {
                exchange: &dlx,
                routing_key: &routing_key,
                properties: &properties,
                body: m.body,
            };
            refused |= self.delay_message(vname, &ex, &next, persistent, delay).1;
        }
        self.batch.republishing -= 1;
        if targets.is_empty() {
            return refused;
        }
        let next = Incoming {
            exchange: &dlx,
            routing_key: &routing_key,
            properties: &properties,
            body: m.body,
        };
        self.batch.dead_letter_depth += 1;
        self.batch.republishing += 1;
        // Dead-lettered messages are not confirmed to anyone; their store
        // record is synced with the next group commit.
        let r = self.enqueue(vname, &targets, &next, persistent, None);
        self.batch.republishing -= 1;
        self.batch.dead_letter_depth -= 1;
        refused || r.store_refused
    }
}

/// Adds or updates the `x-death` entry for (queue, reason) and the
/// `x-first-death-*` headers, in RabbitMQ 3.10's layout.
fn add_x_death(
    headers: &mut FieldTable,
    queue: &ShortStr,
    reason: &str,
    exchange: &str,
    routing_key: &str,
    expiration: Option<&ShortStr>,
) {
    let s = |v: &str| FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()));
    let mut deaths: Vec<FieldValue> = match headers.remove("x-death") {
        Some(FieldValue::Array(a)) => a,
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        t.get("queue").and_then(|v| v.as_str()) == Some(queue.as_str())
            && t.get("reason").and_then(|v| v.as_str()) == Some(reason)
    };
    let existing = deaths.iter().position(|d| d.as_table().is_some_and(same));
    let entry = match existing {
        Some(i) => {
            let mut t = match deaths.remove(i) {
                FieldValue::Table(t) => t,
                _ => unreachable_table(),
            };
            let count = t.get("count").and_then(|v| v.as_i64()).unwrap_or(0) + 1;
            t.insert("count".into(), FieldValue::I64(count));
            t.insert("time".into(), FieldValue::Timestamp(unix_seconds()));
            t
        }
        None => {
            let mut t = FieldTable::new();
            t.insert("count".into(), FieldValue::I64(1));
            t.insert("reason".into(), s(reason));
            t.insert("queue".into(), s(queue));
            t.insert("time".into(), FieldValue::Timestamp(unix_seconds()));
            t.insert("exchange".into(), s(exchange));
            t.insert(
                "routing-keys".into(),
                FieldValue::Array(vec![s(routing_key)]),
            );
            if let Some(e) = expiration {
                t.insert("original-expiration".into(), s(e));
            }
            t
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    headers.insert("x-death".into(), FieldValue::Array(deaths));
    if headers.get("x-first-death-reason").is_none() {
        headers.insert("x-first-death-exchange".into(), s(exchange));
        headers.insert("x-first-death-queue".into(), s(queue));
        headers.insert("x-first-death-reason".into(), s(reason));
    }
}

/// `deaths[i]` was checked to be a table just above.
fn unreachable_table() -> FieldTable {
    FieldTable::new()
}

/// Wall-clock seconds for `x-death`'s `time` (the test clock in core tests,
/// so two cores fed the same traffic stamp the same time).
fn unix_seconds() -> u64 {
    crate::delayed::wall_ms() / 1000
}
