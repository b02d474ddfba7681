//! exchange.* and queue.* methods: declaring, binding, purging, deleting.

use amqp_codec::{
    ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, FieldTable, Method, QueueBind,
    QueueDeclare, QueueDelete, QueuePurge, QueueUnbind, ShortStr,
};
use bytes::BytesMut;

use crate::broker::Broker;
use crate::error::AmqpError;
use crate::exchange::{Destination, Exchange};
use crate::persist::{BindingDef, ExchangeDef, QueueDef};
use crate::queue::Queue;
use crate::queue_type::{self, QueueType};
use crate::ConnId;

pub(crate) fn no_exchange(name: &str, vhost: &str) -> AmqpError {
    AmqpError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
}
pub(crate) fn no_queue(name: &str, vhost: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}
pub(crate) fn locked(name: &str, vhost: &str) -> AmqpError {
    AmqpError::resource_locked(format!(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
    ))
}
fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}
fn inequivalent(
    what: &str,
    arg: &str,
    name: &str,
    vhost: &str,
    received: impl std::fmt::Display,
    current: impl std::fmt::Display,
) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
    ))
}
fn encoded(t: &FieldTable) -> Vec<u8> {
    let mut b = BytesMut::new();
    t.encode(&mut b);
    b.to_vec()
}

/// A table in its own allocation (see `ShortStr::detached`): decoded tables
/// are slices of their frame, which a stored one would pin.
pub(crate) fn detached_table(t: &FieldTable) -> FieldTable {
    if t.is_empty() {
        return FieldTable::default();
    }
    decode_table(&encoded(t))
}

/// A table from its encoding (as stored), in its own allocation; an
/// undecodable one reads as empty.
pub(crate) fn decode_table(raw: &[u8]) -> FieldTable {
    let mut b = bytes::Bytes::copy_from_slice(raw);
    FieldTable::decode(&mut b).unwrap_or_default()
}
/// Exchange arguments RabbitMQ checks for equivalence.
const EXCHANGE_ARGS_CHECKED: [&str; 1] = ["alternate-exchange"];

/// Compares declared arguments with existing ones as RabbitMQ does.
fn check_args(
    keys: &[&str],
    what: &str,
    name: &str,
    vhost: &str,
    new: &FieldTable,
    cur: &FieldTable,
) -> Result<(), AmqpError> {
    crate::queue_type::check_equivalence(keys, what, name, vhost, new, cur)
}

impl Broker {
    pub(crate) fn vhost_of(&self, conn: ConnId) -> Result<std::sync::Arc<str>, AmqpError> {
        self.conns
            .get(&conn)
            .map(|c| c.info.vhost.clone())
            .ok_or_else(|| AmqpError::internal("no connection"))
    }

    /// The queue `name` in `vhost`, or 404 NOT_FOUND.
    pub(crate) fn queue_ref(&self, vhost: &str, name: &str) -> Result<&Queue, AmqpError> {
        self.vhosts
            .get(vhost)
            .and_then(|v| v.queues.get(name))
            .ok_or_else(|| no_queue(name, vhost))
    }

    /// Mutable [`Broker::queue_ref`].
    pub(crate) fn queue_mut(&mut self, vhost: &str, name: &str) -> Result<&mut Queue, AmqpError> {
        self.vhosts
            .get_mut(vhost)
            .and_then(|v| v.queues.get_mut(name))
            .ok_or_else(|| no_queue(name, vhost))
    }

    /// Fails with 405 if the queue is exclusive to another connection.
    fn check_exclusive(&self, conn: ConnId, vhost: &str, q: &Queue) -> Result<(), AmqpError> {
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(locked(&q.name, vhost)),
            _ => Ok(()),
        }
    }

    pub(crate) fn exchange_declare(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: ExchangeDeclare,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let name = m.exchange.clone();
        let kind_str = m.kind.as_str();
        let v = self
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        if name.is_empty() {
            // RabbitMQ 3.10 refuses the default exchange, passive or not.
            return Err(default_exchange_refused());
        }
        if m.passive {
            if !v.exchanges.contains_key(&name) {
                return Err(no_exchange(&name, &vname));
            }
        } else {
            if name.starts_with("amq.") && !v.exchanges.contains_key(&name) {
                return Err(AmqpError::access_refused(format!(
                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
            let (kind, delayed) = crate::delayed::declared_kind(kind_str, &m.arguments)?;
            if let Some(ex) = v.exchanges.get(&name) {
                // Two delayed exchanges differ by x-delayed-type (checked below).
                if ex.delayed != delayed || (!delayed && ex.kind != kind) {
                    return Err(inequivalent(
                        "exchange",
                        "type",
                        &name,
                        &vname,
                        kind_str,
                        ex.type_name(),
                    ));
                }
                if ex.durable != m.durable {
                    return Err(inequivalent(
                        "exchange", "durable", &name, &vname, m.durable, ex.durable,
                    ));
                }
                if ex.auto_delete != m.auto_delete {
                    return Err(inequivalent(
                        "exchange",
                        "auto_delete",
                        &name,
                        &vname,
                        m.auto_delete,
                        ex.auto_delete,
                    ));
                }
                if ex.internal != m.internal {
                    return Err(inequivalent(
                        "exchange",
                        "internal",
                        &name,
                        &vname,
                        m.internal,
                        ex.internal,
                    ));
                }
                check_args(
                    &EXCHANGE_ARGS_CHECKED,
                    "exchange",
                    &name,
                    &vname,
                    &m.arguments,
                    &ex.arguments,
                )?;
                if delayed {
                    check_args(
                        &[crate::delayed::DELAYED_TYPE_ARG],
                        "exchange",
                        &name,
                        &vname,
                        &m.arguments,
                        &ex.arguments,
                    )?;
                }
            } else {
                let dedup = crate::dedup::Dedup::from_args(&m.arguments)
                    .map_err(AmqpError::precondition_failed)?;
                if m.durable {
                    self.persist
                        .put_exchange(&ExchangeDef {
                            vhost: vname.to_string(),
                            name: name.to_string(),
                            kind: kind_str.to_string(),
                            auto_delete: m.auto_delete,
                            internal: m.internal,
                            arguments: encoded(&m.arguments),
                        })
                        .map_err(AmqpError::internal)?;
                }
                let name = name.detached();
                let mut ex = Exchange::new(
                    name.clone(),
                    kind,
                    m.durable,
                    m.auto_delete,
                    m.internal,
                    detached_table(&m.arguments),
                );
                ex.delayed = delayed;
                ex.dedup = dedup.map(Box::new);
                v.exchanges.insert(name.clone(), ex);
                if delayed {
                    self.create_delayed(&vname, &name, m.durable)
                        .map_err(AmqpError::internal)?;
                }
            }
        }
        if !m.no_wait {
            self.send(conn, ch, &Method::ExchangeDeclareOk(Default::default()));
        }
        Ok(())
    }

    pub(crate) fn exchange_delete(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: ExchangeDelete,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        if m.exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        if m.exchange.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                m.exchange
            )));
        }
        let v = self
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        if let Some(ex) = v.exchanges.get(&m.exchange) {
            if m.if_unused && !ex.bindings.is_empty() {
                return Err(AmqpError::precondition_failed(format!(
                    "exchange '{}' in vhost '{vname}' in use",
                    m.exchange
                )));
            }
            self.delete_exchange_internal(&vname, &m.exchange);
        }
        if !m.no_wait {
            self.send(conn, ch, &Method::ExchangeDeleteOk(Default::default()));
        }
        Ok(())
    }

    /// Deletes an exchange, its bindings, and bindings that lead to it.
    pub(crate) fn delete_exchange_internal(&mut self, vname: &str, name: &ShortStr) {
        let Some(v) = self.vhosts.get_mut(vname) else {
            return;
        };
        let Some(ex) = v.remove_exchange(name) else {
            return;
        };
        if ex.durable {
            let _ = self.persist.delete_exchange(vname, name);
        }
        if ex.delayed {
            self.drop_delayed(vname, name, ex.durable);
        }
        let Some(v) = self.vhosts.get_mut(vname) else {
            return;
        };
        let sources = v.unbind_destination(&Destination::Exchange(name.clone()));
        for s in sources {
            self.maybe_auto_delete_exchange(vname, &s);
        }
    }

    /// Auto-delete exchanges go when their last binding is removed.
    pub(crate) fn maybe_auto_delete_exchange(&mut self, vname: &str, name: &ShortStr) {
        let Some(v) = self.vhosts.get(vname) else {
            return;
        };
        if let Some(ex) = v.exchanges.get(name) {
            if ex.auto_delete && ex.bindings.is_empty() {
                self.delete_exchange_internal(vname, name);
            }
        }
    }

    fn bind_common(
        &mut self,
        conn: ConnId,
        source: &ShortStr,
        dest: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
        bind: bool,
    ) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        if source.is_empty() || matches!(&dest, Destination::Exchange(e) if e.is_empty()) {
            return Err(default_exchange_refused());
        }
        let v = self
            .vhosts
            .get(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        let dest_found = match &dest {
            Destination::Queue(q) => v.queues.get(q).map(|queue| (queue.durable, Some(queue))),
            Destination::Exchange(e) => v.exchanges.get(e).map(|x| (x.durable, None)),
        };
        let ex = v.exchanges.get(source);
        if !bind {
            // RabbitMQ 3.x: unbinding what is not there (the binding, the
            // queue or an exchange) succeeds; the exclusive check applies
            // only to a binding that exists.
            let (Some((_, queue)), Some(ex)) = (dest_found, ex) else {
                return Ok(());
            };
            if !ex.has_binding(&dest, &routing_key, &arguments) {
                return Ok(());
            }
            if let Some(queue) = queue {
                self.check_exclusive(conn, &vname, queue)?;
            }
        }
        let Some((dest_durable, queue)) = dest_found else {
            return Err(match &dest {
                Destination::Queue(q) => no_queue(q, &vname),
                Destination::Exchange(e) => no_exchange(e, &vname),
            });
        };
        if let (true, Some(queue)) = (bind, queue) {
            self.check_exclusive(conn, &vname, queue)?;
        }
        let ex = ex.ok_or_else(|| no_exchange(source, &vname))?;
        let durable = ex.durable && dest_durable;
        let def = BindingDef {
            vhost: vname.to_string(),
            source: source.to_string(),
            destination: dest.name().to_string(),
            destination_is_queue: matches!(dest, Destination::Queue(_)),
            routing_key: routing_key.to_string(),
            arguments: encoded(&arguments),
        };
        let v = self
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        if !v.exchanges.contains_key(source) {
            return Err(no_exchange(source, &vname));
        }
        if bind {
            let dest = match dest {
                Destination::Queue(q) => Destination::Queue(q.detached()),
                Destination::Exchange(e) => Destination::Exchange(e.detached()),
            };
            let added = v
                .bind(
                    source,
                    dest,
                    routing_key.detached(),
                    detached_table(&arguments),
                )
                .map_err(AmqpError::precondition_failed)?;
            if added && durable {
                self.persist
                    .put_binding(&def)
                    .map_err(AmqpError::internal)?;
            }
        } else {
            let removed = v.unbind(source, &dest, &routing_key, &arguments);
            if removed && durable {
                self.persist
                    .delete_binding(&def)
                    .map_err(AmqpError::internal)?;
            }
            self.maybe_auto_delete_exchange(&vname, source);
        }
        Ok(())
    }

    pub(crate) fn exchange_bind(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: ExchangeBind,
    ) -> Result<(), AmqpError> {
        self.bind_common(
            conn,
            &m.source,
            Destination::Exchange(m.destination),
            m.routing_key,
            m.arguments,
            true,
        )?;
        if !m.no_wait {
            self.send(conn, ch, &Method::ExchangeBindOk(Default::default()));
        }
        Ok(())
    }

    pub(crate) fn exchange_unbind(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: ExchangeUnbind,
    ) -> Result<(), AmqpError> {
        self.bind_common(
            conn,
            &m.source,
            Destination::Exchange(m.destination),
            m.routing_key,
            m.arguments,
            false,
        )?;
        if !m.no_wait {
            self.send(conn, ch, &Method::ExchangeUnbindOk(Default::default()));
        }
        Ok(())
    }

    pub(crate) fn queue_bind(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: QueueBind,
    ) -> Result<(), AmqpError> {
        let queue = self.resolve_queue_name(conn, ch, m.queue)?;
        self.bind_common(
            conn,
            &m.exchange,
            Destination::Queue(queue),
            m.routing_key,
            m.arguments,
            true,
        )?;
        if !m.no_wait {
            self.send(conn, ch, &Method::QueueBindOk(Default::default()));
        }
        Ok(())
    }

    pub(crate) fn queue_unbind(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: QueueUnbind,
    ) -> Result<(), AmqpError> {
        let queue = self.resolve_queue_name(conn, ch, m.queue)?;
        self.bind_common(
            conn,
            &m.exchange,
            Destination::Queue(queue),
            m.routing_key,
            m.arguments,
            false,
        )?;
        self.send(conn, ch, &Method::QueueUnbindOk(Default::default()));
        Ok(())
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
        let c = self.channel_mut(conn, ch)?;
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
        let vname = self.vhost_of(conn)?;
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
        if m.passive && name.as_str() == crate::reply_to::REPLY_QUEUE {
            self.send(
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
        let v = self
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
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
            if let Err(detail) = crate::queue_args::QueueLimits::parse(&m.arguments) {
                return Err(AmqpError::precondition_failed(detail.replacen(
                    "': ",
                    &format!("' for queue '{name}' in vhost '{vname}': "),
                    1,
                )));
            }
            crate::dedup::Dedup::from_args(&m.arguments).map_err(AmqpError::precondition_failed)?;
            if m.durable && !m.exclusive {
                self.persist
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
            v.insert_queue(Queue::new(
                name.clone(),
                durable,
                owner,
                m.auto_delete,
                args,
            ));
            // Bind to the default exchange implicitly (routing is special-cased).
            if m.exclusive {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.exclusive_queues.push(name.clone());
                }
            }
        }
        let v = self
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        let (messages, consumers) = match v.queues.get_mut(&name) {
            Some(q) => {
                q.last_used_ms = crate::message::now_ms();
                (q.message_count(), q.consumer_count())
            }
            None => (0, 0),
        };
        if let Ok(c) = self.channel_mut(conn, ch) {
            c.last_queue = Some(name.clone());
        }
        if !m.no_wait {
            self.send(
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
        let vname = self.vhost_of(conn)?;
        let name = self.resolve_queue_name(conn, ch, m.queue)?;
        let v = self
            .vhosts
            .get(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
        let q = v.queues.get(&name).ok_or_else(|| no_queue(&name, &vname))?;
        self.check_exclusive(conn, &vname, q)?;
        let q = self.queue_mut(&vname, &name)?;
        let purged = q.purge();
        let durable = q.durable;
        for m in &purged {
            self.settle_message(&vname, &name, durable, *m);
        }
        if !m.no_wait {
            let message_count = u32::try_from(purged.len()).unwrap_or(u32::MAX);
            self.send(
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
        let vname = self.vhost_of(conn)?;
        let name = self.resolve_queue_name(conn, ch, m.queue)?;
        let v = self
            .vhosts
            .get(&*vname)
            .ok_or_else(|| AmqpError::internal("vhost gone"))?;
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
            self.send(
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
        let Some(v) = self.vhosts.get_mut(vname) else {
            return;
        };
        let Some(q) = v.queues.remove(name) else {
            return;
        };
        let sources = v.unbind_destination(&Destination::Queue(name.clone()));
        if q.timed {
            // O(timed queues); keeps the tick's list free of stale names.
            v.timed_queues.retain(|n| n != name);
        }
        if q.durable && q.exclusive_owner.is_none() {
            let _ = self.persist.delete_queue(vname, name);
        }
        // The store forgot the queue's messages with it; drop arena references.
        for m in q.ready_messages() {
            self.arena.release(m.loc());
        }
        for c in &q.consumers {
            let Some(conn) = self.conns.get_mut(&c.conn) else {
                continue;
            };
            let notify = conn.info.consumer_cancel_notify;
            if let Some(chan) = conn.channels.get_mut(&c.channel) {
                chan.consumers.remove(&c.tag);
            }
            if notify && !conn.closing {
                self.dirty.push(c.conn);
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
            if let Some(c) = self.conns.get_mut(&owner) {
                c.exclusive_queues.retain(|n| n != name);
            }
        }
        for s in sources {
            self.maybe_auto_delete_exchange(vname, &s);
        }
    }

    /// Auto-delete queues go when their last consumer does.
    pub(crate) fn maybe_auto_delete_queue(&mut self, vname: &str, name: &ShortStr) {
        let Some(q) = self.vhosts.get(vname).and_then(|v| v.queues.get(name)) else {
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
