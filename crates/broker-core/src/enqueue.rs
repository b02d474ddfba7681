//! Putting a routed message into queues (length limits, TTL, persistence),
//! dead-lettering, and the periodic tick that expires messages and queues.

use std::sync::Arc;

use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};
use bytes::Bytes;

use crate::broker::Broker;
use crate::message::{now_ms, Message, QueuedMessage};
use crate::persist::{MessageRecord, Seq};
use crate::queue_args::Overflow;

/// Dead-lettering can cascade (a DLX queue that is itself full and
/// dead-letters onward); this bounds the depth so a cycle cannot recurse.
const DEAD_LETTER_DEPTH_MAX: u32 = 8;

/// Outcome of enqueueing one message.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enqueued {
    /// Store seq that must be durable before confirming (0 = none).
    pub seq: Seq,
    /// Some queue refused the message (x-overflow reject-publish).
    pub rejected: bool,
    /// Number of queues that took it.
    pub queued: usize,
}

impl Broker {
    /// Enqueues `message` into `targets` (queue names in `vname`), applying
    /// each queue's limits and TTL, writing it once to the store when it is
    /// persistent and reaches durable queues, then dispatching.
    pub(crate) fn enqueue(
        &mut self,
        vname: &str,
        targets: &[ShortStr],
        message: Arc<Message>,
        expiration_ms: Option<u64>,
    ) -> Enqueued {
        let mut out = Enqueued::default();
        let size = message.body.len() as u64;
        let mut accepted: Vec<&ShortStr> = Vec::with_capacity(targets.len());
        let mut refused_dlx: Vec<ShortStr> = Vec::new();
        if let Some(v) = self.vhosts.get(vname) {
            for t in targets {
                let Some(q) = v.queues.get(t) else { continue };
                if q.is_full_for(size) && q.limits.overflow != Overflow::DropHead {
                    out.rejected = true;
                    if q.limits.overflow == Overflow::RejectPublishDlx {
                        refused_dlx.push(t.clone());
                    }
                    continue;
                }
                accepted.push(t);
            }
        }
        let mut store_id = None;
        if message.persistent {
            let durable: Vec<&str> = accepted
                .iter()
                .filter(|t| {
                    self.vhosts
                        .get(vname)
                        .and_then(|v| v.queues.get(**t))
                        .is_some_and(|q| q.durable && q.exclusive_owner.is_none())
                })
                .map(|t| t.as_str())
                .collect();
            if !durable.is_empty() {
                let record = MessageRecord {
                    exchange: message.exchange.to_string(),
                    routing_key: message.routing_key.to_string(),
                    properties: message.properties.clone(),
                    body: message.body.clone(),
                };
                match self.persist.append_message(vname, &record, &durable) {
                    Ok((id, seq)) => {
                        store_id = Some(id);
                        out.seq = seq;
                    }
                    Err(e) => {
                        // The store refuses writes (I/O error, full disk):
                        // refuse the message rather than pretend it is safe.
                        tracing::warn!("store refused a persistent message: {e}");
                        out.rejected = true;
                        return out;
                    }
                }
            }
        }
        let now = now_ms();
        let mut dropped: Vec<(ShortStr, QueuedMessage)> = Vec::new();
        let Some(v) = self.vhosts.get_mut(vname) else {
            return out;
        };
        for t in &accepted {
            let Some(q) = v.queues.get_mut(*t) else {
                continue;
            };
            let ttl = match (q.limits.message_ttl_ms, expiration_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let expires = ttl.map_or(u64::MAX, |t| now.saturating_add(t));
            let id = if q.durable && q.exclusive_owner.is_none() {
                store_id
            } else {
                None
            };
            q.push(message.clone(), id, expires);
            out.queued += 1;
            while q.is_over_limit() {
                match q.pop() {
                    Some(m) => dropped.push(((*t).clone(), m)),
                    None => break,
                }
            }
        }
        let accepted: Vec<ShortStr> = accepted.into_iter().cloned().collect();
        for (q, m) in dropped {
            self.dead_letter(vname, &q, m, "maxlen");
        }
        for q in refused_dlx {
            let m = QueuedMessage {
                message: message.clone(),
                position: 0,
                redelivered: false,
                store_id: None,
                expires_at_ms: u64::MAX,
            };
            self.dead_letter(vname, &q, m, "maxlen");
        }
        for t in &accepted {
            self.dispatch(vname, t);
        }
        out
    }

    /// A message leaves `queue` without being delivered successfully
    /// (rejected, expired, or pushed out by a length limit). It is removed
    /// from the store and, if the queue has a dead-letter exchange,
    /// republished there with an `x-death` record, as RabbitMQ does.
    pub(crate) fn dead_letter(
        &mut self,
        vname: &str,
        queue: &ShortStr,
        m: QueuedMessage,
        reason: &str,
    ) {
        if let Some(id) = m.store_id {
            let _ = self.persist.remove_message(vname, queue, id);
        }
        let Some(q) = self.vhosts.get(vname).and_then(|v| v.queues.get(queue)) else {
            return;
        };
        let Some(dlx) = q.limits.dead_letter_exchange.clone() else {
            return;
        };
        let dlrk = q.limits.dead_letter_routing_key.clone();
        if self.dead_letter_depth >= DEAD_LETTER_DEPTH_MAX {
            tracing::warn!(queue = %queue, "dead-letter chain too deep; dropping message");
            return;
        }
        let old = &m.message;
        let mut props = BasicProperties::decode(&old.properties).unwrap_or_default();
        let original_expiration = props.expiration.take();
        let mut headers = props.headers.take().unwrap_or_default();
        add_x_death(
            &mut headers,
            queue,
            reason,
            &old.exchange,
            &old.routing_key,
            original_expiration.as_ref(),
        );
        props.headers = Some(headers);
        let routing_key = dlrk.unwrap_or_else(|| old.routing_key.clone());
        let message = Arc::new(Message {
            exchange: dlx.clone(),
            routing_key: routing_key.clone(),
            properties: props.to_bytes(),
            body: old.body.clone(),
            persistent: old.persistent,
        });
        let mut targets = Vec::new();
        if let Some(v) = self.vhosts.get(vname) {
            let raw = message.properties.clone();
            let mut h = || BasicProperties::decode(&raw).ok().and_then(|p| p.headers);
            v.route(&dlx, &routing_key, &mut h, &mut targets);
        }
        if targets.is_empty() {
            return;
        }
        self.dead_letter_depth += 1;
        // Dead-lettered messages are not confirmed to anyone; their store
        // record is synced with the next group commit.
        let _ = self.enqueue(vname, &targets, message, None);
        self.dead_letter_depth -= 1;
    }

    /// Periodic housekeeping, called by the server a few times a second:
    /// expires messages at the head of queues and deletes queues whose
    /// `x-expires` has passed.
    pub fn tick(&mut self) {
        let now = now_ms();
        let mut expired: Vec<(String, ShortStr, QueuedMessage)> = Vec::new();
        let mut idle: Vec<(String, ShortStr)> = Vec::new();
        for (vname, v) in self.vhosts.iter_mut() {
            for (name, q) in v.queues.iter_mut() {
                while let Some(m) = q.pop_expired(now, false) {
                    expired.push((vname.clone(), name.clone(), m));
                }
                if let Some(ttl) = q.limits.expires_ms {
                    if q.consumers.is_empty() && now.saturating_sub(q.last_used_ms) >= ttl {
                        idle.push((vname.clone(), name.clone()));
                    }
                }
            }
        }
        for (v, q, m) in expired {
            self.dead_letter(&v, &q, m, "expired");
        }
        for (v, q) in idle {
            self.delete_queue_internal(&v, &q);
        }
    }
}

/// Adds or updates the `x-death` entry for (queue, reason) and the
/// `x-first-death-*` headers, in RabbitMQ 3.10's layout.
fn add_x_death(
    headers: &mut FieldTable,
    queue: &ShortStr,
    reason: &str,
    exchange: &ShortStr,
    routing_key: &ShortStr,
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

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
