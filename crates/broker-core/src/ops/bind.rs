//! exchange.bind / unbind and queue.bind / unbind.

use amqp_codec::{
    ExchangeBind, ExchangeUnbind, FieldTable, Method, QueueBind, QueueUnbind, ShortStr,
};

use crate::access::Perm;
use crate::broker::Broker;
use crate::error::{default_exchange_refused, no_exchange, no_queue, vhost_gone, AmqpError};
use crate::exchange::Destination;
use crate::ops::permit::Kind;
use crate::persist::BindingDef;
use crate::tables::{detached_table, encoded};
use crate::ConnId;

impl Broker {
    fn bind_common(
        &mut self,
        conn: ConnId,
        source: &ShortStr,
        dest: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
        bind: bool,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        // RabbitMQ's `binding_action` order: write on the destination, the
        // default-exchange refusal, read on the source, topic read.
        let (dest_kind, dest_name) = match &dest {
            Destination::Queue(q) => (Kind::Queue, q),
            Destination::Exchange(e) => (Kind::Exchange, e),
        };
        self.permit(conn, dest_kind, dest_name, Perm::Write)?;
        if source.is_empty() || matches!(&dest, Destination::Exchange(e) if e.is_empty()) {
            return Err(default_exchange_refused());
        }
        self.permit(conn, Kind::Exchange, source, Perm::Read)?;
        let v = self.topology.vhosts.get(&*vname).ok_or_else(vhost_gone)?;
        if v.exchanges
            .get(source)
            .is_some_and(|x| x.kind == crate::exchange::ExchangeKind::Topic)
        {
            self.permit_topic_read(conn, source, &routing_key)?;
        }
        let v = self.topology.vhosts.get(&*vname).ok_or_else(vhost_gone)?;
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
            .topology
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(vhost_gone)?;
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
                self.durability
                    .persist
                    .put_binding(&def)
                    .map_err(AmqpError::internal)?;
            }
        } else {
            let removed = v.unbind(source, &dest, &routing_key, &arguments);
            if removed && durable {
                self.durability
                    .persist
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
            self.sessions
                .send(conn, ch, &Method::ExchangeBindOk(Default::default()));
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
            self.sessions
                .send(conn, ch, &Method::ExchangeUnbindOk(Default::default()));
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
            self.sessions
                .send(conn, ch, &Method::QueueBindOk(Default::default()));
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
        self.sessions
            .send(conn, ch, &Method::QueueUnbindOk(Default::default()));
        Ok(())
    }
}
