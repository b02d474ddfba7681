//! queue.declare (with the equivalence checks), queue.purge, queue.delete,
//! and deleting queues (also exclusive and auto-delete ones).

use amqp_codec::{Method, QueueDeclare, QueueDelete, QueuePurge, ShortStr};

use crate::access::Perm;
use crate::broker::Broker;
use crate::error::{inequivalent, locked, no_queue, vhost_gone, AmqpError};
use crate::exchange::Destination;
use crate::ops::exchange_methods::check_args;
use crate::ops::permit::Kind;
use crate::persist::QueueDef;
use crate::queue::Queue;
use crate::queue_type::{self, QueueType};
use crate::tables::{detached_table, encoded};
use crate::ConnId;

impl Broker {
    /// Fails with 405 if the queue is exclusive to another connection.
    pub(crate) fn check_exclusive(
        &self,
        conn: ConnId,
        vhost: &str,
        q: &Queue,
    ) -> Result<(), AmqpError> {
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(locked(&q.name, vhost)),
            _ => Ok(()),
        }
    }

    /// An empty queue name means "the last queue declared on this channel";
    /// we keep that per connection+channel in `last_queue`.
    pub(crate) fn resolve_queue_name(
        &mut self,
        conn: ConnId,
        ch: u16,
        name: ShortStr,
    ) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name);
        }
        let c = self.sessions.channel_mut(conn, ch)?;
        c.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    pub(crate) fn queue_declare(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: QueueDeclare,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        if !m.passive && m.queue.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "queue name '{}' contains reserved prefix 'amq.*'",
                m.queue
            )));
        }
        let name = if m.queue.is_empty() && !m.passive {
            if let Some(e) = queue_type::server_named_refused(QueueType::of(&m.arguments)) {
                return Err(e);
            }
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&self.random().to_le_bytes());
            raw[8..].copy_from_slice(&self.random().to_le_bytes());
            ShortStr::from(format!("amq.gen-{}", base64url(&raw)))
        } else {
            self.resolve_queue_name(conn, ch, m.queue.clone())?
        };
        // RabbitMQ 3.10 checks nothing on a passive declare.
        if !m.passive {
            self.permit(conn, Kind::Queue, &name, Perm::Configure)?;
        }
        if m.passive && name.as_str() == crate::reply_to::REPLY_QUEUE {
            self.sessions.send(
                conn,
                ch,
                &Method::QueueDeclareOk(amqp_codec::QueueDeclareOk {
                    queue: name,
                    message_count: 0,
                    consumer_count: 0,
                }),
            );
            return Ok(());
        }
        let exists = self
            .topology
            .vhosts
            .get(&*vname)
            .is_some_and(|v| v.queues.contains_key(&name));
        if !m.passive && !exists {
            self.check_new_queue_access(conn, &vname, &name, &m.arguments)?;
        }
        let v = self
            .topology
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(vhost_gone)?;
        if let Some(q) = v.queues.get(&name) {
            match q.exclusive_owner {
                Some(owner) if owner != conn => return Err(locked(&name, &vname)),
                _ => {}
            }
            if !m.passive {
                if q.durable != m.durable {
                    return Err(inequivalent(
                        "queue", "durable", &name, &vname, m.durable, q.durable,
                    ));
                }
                if q.exclusive_owner.is_some() != m.exclusive {
                    return Err(locked(&name, &vname));
                }
                if q.auto_delete != m.auto_delete {
                    return Err(inequivalent(
                        "queue",
                        "auto_delete",
                        &name,
                        &vname,
                        m.auto_delete,
                        q.auto_delete,
                    ));
                }
                check_args(
                    q.kind.arguments(),
                    "queue",
                    &name,
                    &vname,
                    &m.arguments,
                    &q.arguments,
                )?;
            }
        } else if m.passive {
            return Err(no_queue(&name, &vname));
        } else {
            let declared = queue_type::Declared {
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
            };
            queue_type::check_new_queue(&name, &vname, &m.arguments, declared)?;
            crate::dedup::Dedup::from_args(&m.arguments).map_err(AmqpError::precondition_failed)?;
            if m.durable && !m.exclusive {
                self.durability
                    .persist
                    .put_queue(&QueueDef {
                        vhost: vname.to_string(),
                        name: name.to_string(),
                        auto_delete: m.auto_delete,
                        exclusive: false,
                        arguments: encoded(&m.arguments),
                    })
                    .map_err(AmqpError::internal)?;
            }
            let owner = m.exclusive.then_some(conn);
            // Exclusive queues are never stored: they die with their connection.
            let durable = m.durable;
            let name = name.detached();
            let args = detached_table(&m.arguments);
            self.global.queues_created += 1;
            v.insert_queue(Queue::new(
                name.clone(),
                durable,
                owner,
                m.auto_delete,
                args,
            ));
            // Bind to the default exchange implicitly (routing is special-cased).
            if m.exclusive {
                if let Some(c) = self.sessions.conns.get_mut(&conn) {
                    c.exclusive_queues.push(name.clone());
                }
            }
        }
        let v = self
            .topology
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(vhost_gone)?;
        let (messages, consumers) = match v.queues.get_mut(&name) {
            Some(q) => {
                q.last_used_ms = crate::message::now_ms();
                (q.message_count(), q.consumer_count())
            }
            None => (0, 0),
        };
        if let Ok(c) = self.sessions.channel_mut(conn, ch) {
            c.last_queue = Some(name.clone());
        }
        self.global.queues_declared += 1;
        if !m.no_wait {
            self.sessions.send(
                conn,
                ch,
                &Method::QueueDeclareOk(amqp_codec::QueueDeclareOk {
                    queue: name,
                    message_count: messages,
                    consumer_count: consumers,
                }),
            );
        }
        Ok(())
    }

    pub(crate) fn queue_purge(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: QueuePurge,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        let name = self.resolve_queue_name(conn, ch, m.queue)?;
        self.permit(conn, Kind::Queue, &name, Perm::Read)?;
        let v = self.topology.vhosts.get(&*vname).ok_or_else(vhost_gone)?;
        let q = v.queues.get(&name).ok_or_else(|| no_queue(&name, &vname))?;
        self.check_exclusive(conn, &vname, q)?;
        let q = self.topology.queue_mut(&vname, &name)?;
        let purged = q.purge();
        let durable = q.durable;
        for m in &purged {
            self.settle_message(&vname, &name, durable, *m);
        }
        if !m.no_wait {
            let message_count = u32::try_from(purged.len()).unwrap_or(u32::MAX);
            self.sessions.send(
                conn,
                ch,
                &Method::QueuePurgeOk(amqp_codec::QueuePurgeOk { message_count }),
            );
        }
        Ok(())
    }

    pub(crate) fn queue_delete(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: QueueDelete,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        let name = self.resolve_queue_name(conn, ch, m.queue)?;
        self.permit(conn, Kind::Queue, &name, Perm::Configure)?;
        let v = self.topology.vhosts.get(&*vname).ok_or_else(vhost_gone)?;
        let mut count = 0;
        if let Some(q) = v.queues.get(&name) {
            self.check_exclusive(conn, &vname, q)?;
            if m.if_unused && !q.consumers.is_empty() {
                return Err(AmqpError::precondition_failed(format!(
                    "queue '{name}' in vhost '{vname}' in use"
                )));
            }
            if m.if_empty && !q.is_empty() {
                return Err(AmqpError::precondition_failed(format!(
                    "queue '{name}' in vhost '{vname}' not empty"
                )));
            }
            count = q.message_count();
            self.delete_queue_internal(&vname, &name);
        }
        if !m.no_wait {
            self.sessions.send(
                conn,
                ch,
                &Method::QueueDeleteOk(amqp_codec::QueueDeleteOk {
                    message_count: count,
                }),
            );
        }
        Ok(())
    }

    /// Deletes a queue: cancels its consumers (telling clients that asked
    /// for consumer_cancel_notify), removes bindings to it, drops its messages.
    pub(crate) fn delete_queue_internal(&mut self, vname: &str, name: &ShortStr) {
        let Some(v) = self.topology.vhosts.get_mut(vname) else {
            return;
        };
        let Some(q) = v.queues.remove(name) else {
            return;
        };
        self.global.retire_queue(q.kind, &q.stats);
        let sources = v.unbind_destination(&Destination::Queue(name.clone()));
        if q.timed {
            // O(timed queues); keeps the tick's list free of stale names.
            v.timed_queues.retain(|n| n != name);
        }
        if q.durable && q.exclusive_owner.is_none() {
            let _ = self.durability.persist.delete_queue(vname, name);
        }
        // The store forgot the queue's messages with it; drop arena references.
        for m in q.ready_messages() {
            self.arena.release(m.loc());
        }
        for c in &q.consumers {
            let Some(conn) = self.sessions.conns.get_mut(&c.conn) else {
                continue;
            };
            let notify = conn.info.consumer_cancel_notify;
            if let Some(chan) = conn.channels.get_mut(&c.channel) {
                chan.consumers.remove(&c.tag);
            }
            if notify && !conn.closing {
                self.sessions.dirty.push(c.conn);
                amqp_codec::encode_method_frame(
                    &mut conn.out,
                    c.channel,
                    &Method::BasicCancel(amqp_codec::BasicCancel {
                        consumer_tag: c.tag.clone(),
                        no_wait: true,
                    }),
                );
            }
        }
        if let Some(owner) = q.exclusive_owner {
            if let Some(c) = self.sessions.conns.get_mut(&owner) {
                c.exclusive_queues.retain(|n| n != name);
            }
        }
        for s in sources {
            self.maybe_auto_delete_exchange(vname, &s);
        }
    }

    /// Auto-delete queues go when their last consumer does.
    pub(crate) fn maybe_auto_delete_queue(&mut self, vname: &str, name: &ShortStr) {
        let Some(q) = self
            .topology
            .vhosts
            .get(vname)
            .and_then(|v| v.queues.get(name))
        else {
            return;
        };
        if q.auto_delete && q.had_consumer && q.consumers.is_empty() {
            self.delete_queue_internal(vname, name);
        }
    }
}

/// URL-safe base64 without padding, as in RabbitMQ's `amq.gen-` names.
fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len() * 4 / 3 + 2);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
