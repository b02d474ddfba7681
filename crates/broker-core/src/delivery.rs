//! Moving messages from queues to consumers, within each consumer's
//! prefetch credit and each socket's write budget.

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, ShortStr, FRAME_END, FRAME_METHOD,
};
use bytes::{BufMut, BytesMut};
use rustc_hash::FxHashMap;

use crate::arena::{full_view, MessageView};
use crate::broker::Broker;
use crate::consumer_timeout::{timeout_for, watch};
use crate::consumers::{can_receive_on, has_credit, pick_consumer};
use crate::enqueue::Incoming;
use crate::message::QueuedMessage;
use crate::queue::Queue;
use crate::quorum::write_view_counted;
use crate::session::{Conn, Unacked};
use crate::ConnId;

/// The content-carrying method to write in front of a message.
pub(crate) enum ContentMethod<'a> {
    Deliver {
        consumer_tag: &'a str,
        delivery_tag: u64,
        redelivered: bool,
    },
    GetOk {
        delivery_tag: u64,
        redelivered: bool,
        message_count: u32,
    },
    Return {
        reply_code: u16,
        reply_text: &'a str,
    },
}

fn put_shortstr(out: &mut BytesMut, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

/// Writes basic.deliver / get-ok / return plus the content header and body
/// frames, straight from the arena's bytes (no intermediate structs, no
/// allocation beyond `out` growing).
pub(crate) fn write_content(
    out: &mut BytesMut,
    ch: u16,
    method: ContentMethod<'_>,
    m: &Incoming<'_>,
    frame_max: u32,
) {
    let Incoming {
        exchange,
        routing_key,
        properties,
        body,
    } = *m;
    out.reserve(
        64 + exchange.len()
            + routing_key.len()
            + properties.len()
            + body.len()
            + 8 * (1 + body.len() / 4096),
    );
    out.put_u8(FRAME_METHOD);
    out.put_u16(ch);
    let size_at = out.len();
    out.put_u32(0);
    let start = out.len();
    out.put_u16(60);
    match method {
        ContentMethod::Deliver {
            consumer_tag,
            delivery_tag,
            redelivered,
        } => {
            out.put_u16(60);
            put_shortstr(out, consumer_tag);
            out.put_u64(delivery_tag);
            out.put_u8(u8::from(redelivered));
            put_shortstr(out, exchange);
            put_shortstr(out, routing_key);
        }
        ContentMethod::GetOk {
            delivery_tag,
            redelivered,
            message_count,
        } => {
            out.put_u16(71);
            out.put_u64(delivery_tag);
            out.put_u8(u8::from(redelivered));
            put_shortstr(out, exchange);
            put_shortstr(out, routing_key);
            out.put_u32(message_count);
        }
        ContentMethod::Return {
            reply_code,
            reply_text,
        } => {
            out.put_u16(50);
            out.put_u16(reply_code);
            put_shortstr(out, reply_text);
            put_shortstr(out, exchange);
            put_shortstr(out, routing_key);
        }
    }
    let size = (out.len() - start) as u32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.put_u8(FRAME_END);
    encode_content_header_frame(out, ch, 60, body.len() as u64, properties);
    encode_body_frames(out, ch, body, frame_max);
}

/// Writes a message view with the given method.
pub(crate) fn write_view(
    out: &mut BytesMut,
    ch: u16,
    method: ContentMethod<'_>,
    v: &MessageView<'_>,
    frame_max: u32,
) {
    write_content(
        out,
        ch,
        method,
        &Incoming {
            exchange: v.exchange,
            routing_key: v.routing_key,
            properties: v.properties,
            body: v.body,
        },
        frame_max,
    );
}

/// Delivers a new message straight to a consumer, without an arena copy or
/// a queue entry, when that changes nothing a client can see: the queue is
/// empty (so order holds), and the consumer the general path would pick
/// (`pick_consumer`) takes messages without acks (auto-ack: nothing to keep
/// for redelivery). Returns false, having done nothing, otherwise; the
/// caller then queues the message as usual.
pub(crate) fn deliver_direct(
    q: &mut Queue,
    conns: &mut FxHashMap<ConnId, Box<Conn>>,
    dirty: &mut Vec<ConnId>,
    write_max: usize,
    m: &Incoming<'_>,
) -> bool {
    if q.consumers.is_empty() || !q.is_empty() {
        return false;
    }
    // One eligible consumer (the only one, or the single active one, which
    // is first): `pick_consumer` would test just it, so test it on the
    // connection fetched for the delivery (one lookup instead of two).
    let (idx, c) = if q.one_eligible_consumer() {
        let k = &q.consumers[0];
        let Some(c) = conns.get_mut(&k.conn) else {
            return false;
        };
        if !can_receive_on(k, c, write_max) {
            return false;
        }
        (0, c)
    } else {
        let Some(idx) = pick_consumer(q, conns, write_max) else {
            return false;
        };
        let Some(c) = conns.get_mut(&q.consumers[idx].conn) else {
            return false;
        };
        (idx, c)
    };
    let k = &q.consumers[idx];
    if !k.no_ack {
        return false;
    }
    let Conn {
        info,
        channels,
        out,
        ..
    } = &mut **c;
    let Some(ch) = channels.get_mut(&k.channel) else {
        return false;
    };
    let tag = ch.next_delivery_tag;
    ch.next_delivery_tag += 1;
    let method = ContentMethod::Deliver {
        consumer_tag: &k.tag,
        delivery_tag: tag,
        redelivered: false,
    };
    write_content(out, k.channel, method, m, info.frame_max);
    ch.stats.deliver_no_ack += 1;
    q.stats.deliver_no_ack += 1;
    crate::session::mark_dirty(dirty, k.conn);
    q.advance_consumer(idx);
    true
}

impl Broker {
    /// Delivers ready messages of one queue to its consumers, round-robin,
    /// skipping consumers without credit, until one side runs out.
    pub(crate) fn dispatch(&mut self, vname: &str, qname: &ShortStr) {
        let expired = self.dispatch_inner(vname, qname);
        for m in expired {
            self.dead_letter(vname, qname, m, "expired");
        }
    }

    /// The delivery loop; returns messages found expired at the head.
    fn dispatch_inner(&mut self, vname: &str, qname: &ShortStr) -> Vec<QueuedMessage> {
        let mut expired = Vec::new();
        let write_max = self.config.write_buffer_bytes_max;
        let server_timeout_ms = self.config.consumer_timeout_ms;
        let Broker {
            topology: crate::broker::Topology { vhosts, .. },
            sessions:
                crate::broker::Sessions {
                    conns,
                    dirty,
                    timeout_watch,
                    ..
                },
            durability: crate::broker::Durability { persist, .. },
            arena,
            ..
        } = self;
        let Some(q) = vhosts.get_mut(vname).and_then(|v| v.queues.get_mut(qname)) else {
            return expired;
        };
        // The clock is read only for queues where a TTL may apply.
        let now = if q.ttl_possible {
            crate::message::now_ms()
        } else {
            0
        };
        // Delivery time for the acknowledgement timeout: the clock is read
        // at most once per run, and only when a timeout applies.
        let timeout_on = timeout_for(q.limits.consumer_timeout_ms, server_timeout_ms).is_some();
        let mut delivered_ms = 0;
        let hold = q.holds_expired(|| persist.refuses_messages());
        while !q.consumers.is_empty() && !q.is_empty() {
            if hold && q.head_expired(now, true, arena.as_ref()) {
                // Nothing behind a waiting expired head is delivered first.
                break;
            }
            if let Some(m) = q.pop_expired(now, true, arena.as_ref()) {
                expired.push(m);
                continue;
            }
            let Some(idx) = pick_consumer(q, conns, write_max) else {
                break;
            };
            q.advance_consumer(idx);
            // Cloned (one refcount bump per turn) so `q` can be popped below.
            let k = q.consumers[idx].clone();
            let k = &k;
            let Some(c) = conns.get_mut(&k.conn) else {
                break;
            };
            let Conn {
                info,
                channels,
                out,
                throttled,
                ..
            } = &mut **c;
            let frame_max = info.frame_max;
            let Some(ch) = channels.get_mut(&k.channel) else {
                break;
            };
            let Some(cons) = ch.consumers.get_mut(&k.tag) else {
                break;
            };
            crate::session::mark_dirty(dirty, k.conn);
            // Round-robin means one message per consumer turn; a lone
            // eligible consumer (one consumer, or the single active one)
            // takes messages back to back while its credit and socket
            // budget last, with the lookups above done once.
            while let Some(msg) = q.pop(arena.as_ref()) {
                let tag = ch.next_delivery_tag;
                ch.next_delivery_tag += 1;
                let Some(view) = full_view(arena.as_ref(), persist.as_mut(), msg.loc()) else {
                    tracing::error!(queue = %qname, "queued message missing from the arena; dropped");
                    continue;
                };
                let method = ContentMethod::Deliver {
                    consumer_tag: &k.tag,
                    delivery_tag: tag,
                    redelivered: msg.redelivered(),
                };
                // Only a returned message of a quorum queue carries a count.
                let count = if msg.redelivered() && q.kind.is_quorum() {
                    q.delivery_count(msg)
                } else {
                    0
                };
                let store_id = view.meta.store_id;
                if count == 0 {
                    write_view(out, k.channel, method, &view, frame_max);
                } else {
                    write_view_counted(out, k.channel, method, &view, frame_max, count);
                }
                if msg.redelivered() {
                    q.stats.redeliver += 1;
                    ch.stats.redeliver += 1;
                }
                if cons.no_ack {
                    q.stats.deliver_no_ack += 1;
                    ch.stats.deliver_no_ack += 1;
                    q.forget_delivery_count(msg);
                    if q.durable && store_id != 0 {
                        let _ = persist.remove_message(vname, qname, store_id);
                    }
                    arena.release(msg.loc());
                } else {
                    if timeout_on && delivered_ms == 0 {
                        delivered_ms = crate::message::now_ms();
                    }
                    if timeout_on {
                        watch(timeout_watch, &mut ch.timeout_watched, k.conn, k.channel);
                    }
                    q.stats.deliver += 1;
                    ch.stats.deliver += 1;
                    cons.unacked += 1;
                    ch.unacked.push_back(Unacked {
                        tag,
                        queue: qname.clone(),
                        msg,
                        consumer: Some(k.tag.clone()),
                        delivered_ms,
                    });
                }
                if !q.one_eligible_consumer() || q.ttl_possible || q.is_empty() {
                    break;
                }
                if out.len() + info.sink.pending_bytes() >= write_max {
                    *throttled = true;
                    break;
                }
                if !has_credit(cons, ch.unacked.len(), ch.prefetch_channel) {
                    break;
                }
            }
        }
        expired
    }

    /// Re-runs delivery for every queue a channel consumes from.
    pub(crate) fn dispatch_channel(&mut self, conn: ConnId, ch: u16) {
        let Some(c) = self.sessions.conns.get(&conn) else {
            return;
        };
        let vhost = c.info.vhost.clone();
        let Some(chan) = c.channels.get(&ch) else {
            return;
        };
        let mut queues: Vec<ShortStr> = chan.consumers.values().map(|k| k.queue.clone()).collect();
        queues.dedup();
        for q in queues {
            self.dispatch(&vhost, &q);
        }
    }

    /// A message leaves a queue for good (acked, dropped, purged): forget its
    /// store record for that queue and its arena reference.
    pub(crate) fn settle_message(
        &mut self,
        vname: &str,
        qname: &str,
        durable: bool,
        m: QueuedMessage,
    ) {
        if durable {
            if let Some(id) = self
                .arena
                .get(m.loc())
                .map(|v| v.meta.store_id)
                .filter(|id| *id != 0)
            {
                let _ = self.durability.persist.remove_message(vname, qname, id);
            }
        }
        self.arena.release(m.loc());
    }
}
