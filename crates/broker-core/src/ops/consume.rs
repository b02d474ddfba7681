//! basic.qos, basic.consume, basic.cancel, basic.get.

use amqp_codec::{BasicConsume, BasicGet, BasicQos, Method, ShortStr};

use crate::access::Perm;
use crate::broker::Broker;
use crate::delivery::{write_view, ContentMethod};
use crate::error::{locked, no_connection, no_queue, AmqpError};
use crate::ops::permit::Kind;
use crate::queue::ConsumerRef;
use crate::quorum::write_view_counted;
use crate::session::ChannelConsumer;
use crate::ConnId;

impl Broker {
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
        let c = self.sessions.channel_mut(conn, ch)?;
        if m.global {
            c.prefetch_channel = u32::from(m.prefetch_count);
        } else {
            c.prefetch_consumer = u32::from(m.prefetch_count);
        }
        self.sessions
            .send(conn, ch, &Method::BasicQosOk(Default::default()));
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
        let vname = self.sessions.vhost_of(conn)?;
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
        self.permit(conn, Kind::Queue, &qname, Perm::Read)?;
        let max = self.config.consumers_per_channel_max;
        let q = self.topology.queue(&vname, &qname)?;
        if q.exclusive_owner.is_some_and(|owner| owner != conn) {
            return Err(locked(&qname, &vname));
        }
        let priority = consumer_priority(&m.arguments, &qname, &vname)?;
        if q.kind.is_quorum() && self.sessions.channel_mut(conn, ch)?.prefetch_channel != 0 {
            // RabbitMQ 3.10 quorum queues refuse a channel-wide prefetch.
            return Err(AmqpError::not_implemented(format!(
                "queue '{qname}' in vhost '{vname}' does not support global qos"
            )));
        }
        let q = self.topology.queue(&vname, &qname)?;
        // An exclusive consumer is refused on a single-active-consumer queue
        // even with no consumers (RabbitMQ 3.10).
        if q.exclusive_consumer
            || (m.exclusive && (!q.consumers.is_empty() || q.limits.single_active_consumer))
        {
            return Err(AmqpError::access_refused(format!(
                "queue '{qname}' in vhost '{vname}' in exclusive use"
            )));
        }
        let c = self.sessions.channel_mut(conn, ch)?;
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
        let q = self.topology.queue_mut(&vname, &qname)?;
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
            self.sessions.send(
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
        let vname = self.sessions.vhost_of(conn)?;
        let c = self.sessions.channel_mut(conn, ch)?;
        if c.reply_consumer
            .as_ref()
            .is_some_and(|(t, _)| *t == m.consumer_tag)
        {
            c.reply_consumer = None;
        }
        if let Some(k) = c.consumers.remove(&m.consumer_tag) {
            if let Some(q) = self
                .topology
                .vhosts
                .get_mut(&*vname)
                .and_then(|v| v.queues.get_mut(&k.queue))
            {
                q.remove_consumer(conn, ch, &m.consumer_tag);
            }
            self.maybe_auto_delete_queue(&vname, &k.queue);
        }
        if !m.no_wait {
            self.sessions.send(
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
        let vname = self.sessions.vhost_of(conn)?;
        let qname = self.resolve_queue_name(conn, ch, m.queue)?;
        self.permit(conn, Kind::Queue, &qname, Perm::Read)?;
        // Field-level borrow: the arena is used alongside the queue below.
        let q = self
            .topology
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
        let persist = &self.durability.persist;
        let hold = q.holds_expired(|| persist.refuses_messages());
        if !hold {
            while let Some(m) = q.pop_expired(now, false, self.arena.as_ref()) {
                expired.push(m);
            }
        }
        // An expired head waiting for the store is not overtaken.
        let popped = if hold && q.head_expired(now, false, self.arena.as_ref()) {
            None
        } else {
            q.pop(self.arena.as_ref())
        };
        match popped {
            None => q.stats.get_empty += 1,
            Some(_) if m.no_ack => q.stats.get_no_ack += 1,
            Some(_) => q.stats.get += 1,
        }
        if popped.is_some_and(|msg| msg.redelivered()) {
            q.stats.redeliver += 1;
        }
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
            self.sessions
                .send(conn, ch, &Method::BasicGetEmpty(Default::default()));
            return Ok(());
        };
        let timeout_on = crate::consumer_timeout::timeout_for(
            consumer_timeout_ms,
            self.config.consumer_timeout_ms,
        )
        .is_some();
        let Broker {
            sessions:
                crate::broker::Sessions {
                    conns,
                    timeout_watch,
                    ..
                },
            arena,
            durability: crate::broker::Durability { persist, .. },
            ..
        } = self;
        let c = conns.get_mut(&conn).ok_or_else(no_connection)?;
        let frame_max = c.info.frame_max;
        let chan = c
            .channels
            .get_mut(&ch)
            .ok_or_else(|| AmqpError::channel_error("channel gone"))?;
        let tag = chan.next_delivery_tag;
        chan.next_delivery_tag += 1;
        if m.no_ack {
            chan.stats.get_no_ack += 1;
        } else {
            chan.stats.get += 1;
        }
        if msg.redelivered() {
            chan.stats.redeliver += 1;
        }
        if let Some(view) = crate::arena::full_view(arena.as_ref(), persist.as_mut(), msg.loc()) {
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
            chan.unacked.push_back(crate::session::Unacked {
                tag,
                queue: qname,
                msg,
                consumer: None,
                delivered_ms: if timeout_on { now } else { 0 },
            });
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
                crate::queue_type::rabbit_type_name(v)
            ))
        }),
    }
}
