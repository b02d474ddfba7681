//! Moving messages from queues to consumers, within each consumer's
//! prefetch credit and each socket's write budget.

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, Method, ShortStr,
};
use bytes::BytesMut;

use crate::broker::{Broker, Unacked};
use crate::message::Message;
use crate::ConnId;

/// Writes a content-carrying method (deliver, get-ok, return) and its content.
pub(crate) fn write_content(
    out: &mut BytesMut,
    ch: u16,
    method: &Method,
    msg: &Message,
    frame_max: u32,
) {
    encode_method_frame(out, ch, method);
    encode_content_header_frame(out, ch, 60, msg.body.len() as u64, &msg.properties);
    encode_body_frames(out, ch, &msg.body, frame_max);
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
    fn dispatch_inner(
        &mut self,
        vname: &str,
        qname: &ShortStr,
    ) -> Vec<crate::message::QueuedMessage> {
        let mut expired = Vec::new();
        let write_max = self.config.write_buffer_bytes_max;
        let now = crate::message::now_ms();
        let Broker {
            vhosts,
            conns,
            persist,
            ..
        } = self;
        let Some(q) = vhosts.get_mut(vname).and_then(|v| v.queues.get_mut(qname)) else {
            return expired;
        };
        let n = q.consumers.len();
        while n > 0 && !q.messages.is_empty() {
            if let Some(m) = q.pop_expired(now, true) {
                expired.push(m);
                continue;
            }
            let mut chosen = None;
            for i in 0..n {
                let idx = (q.next_consumer + i) % n;
                let k = &q.consumers[idx];
                let Some(c) = conns.get_mut(&k.conn) else {
                    continue;
                };
                if c.closing {
                    continue;
                }
                if c.out.len() + c.info.sink.pending_bytes() >= write_max {
                    c.throttled = true;
                    continue;
                }
                let Some(ch) = c.channels.get(&k.channel) else {
                    continue;
                };
                let Some(cons) = ch.consumers.get(&k.tag) else {
                    continue;
                };
                if !ch.flow_active || ch.closing {
                    continue;
                }
                let has_credit = cons.no_ack
                    || ((cons.prefetch == 0 || cons.unacked < cons.prefetch)
                        && (ch.prefetch_channel == 0
                            || (ch.unacked.len() as u64) < u64::from(ch.prefetch_channel)));
                if has_credit {
                    chosen = Some(idx);
                    break;
                }
            }
            let Some(idx) = chosen else { break };
            q.next_consumer = (idx + 1) % n;
            let Some(msg) = q.pop() else { break };
            let k = &q.consumers[idx];
            let Some(c) = conns.get_mut(&k.conn) else {
                break;
            };
            let frame_max = c.info.frame_max;
            let Some(ch) = c.channels.get_mut(&k.channel) else {
                break;
            };
            let Some(cons) = ch.consumers.get_mut(&k.tag) else {
                break;
            };
            let tag = ch.next_delivery_tag;
            ch.next_delivery_tag += 1;
            let method = Method::BasicDeliver(amqp_codec::BasicDeliver {
                consumer_tag: k.tag.clone(),
                delivery_tag: tag,
                redelivered: msg.redelivered,
                exchange: msg.message.exchange.clone(),
                routing_key: msg.message.routing_key.clone(),
            });
            write_content(&mut c.out, k.channel, &method, &msg.message, frame_max);
            if cons.no_ack {
                if let Some(id) = msg.store_id {
                    let _ = persist.remove_message(vname, qname, id);
                }
            } else {
                cons.unacked += 1;
                ch.unacked.push_back(Unacked {
                    tag,
                    queue: qname.clone(),
                    msg,
                    consumer: Some(k.tag.clone()),
                });
            }
        }
        expired
    }

    /// Re-runs delivery for every queue a channel consumes from.
    pub(crate) fn dispatch_channel(&mut self, conn: ConnId, ch: u16) {
        let Some(c) = self.conns.get(&conn) else {
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
}
