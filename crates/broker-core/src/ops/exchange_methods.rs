//! exchange.declare / exchange.delete, and deleting exchanges (also when
//! auto-delete ones lose their last binding).

use amqp_codec::{ExchangeDeclare, ExchangeDelete, FieldTable, Method, ShortStr};

use crate::access::Perm;
use crate::broker::Broker;
use crate::error::{default_exchange_refused, inequivalent, no_exchange, vhost_gone, AmqpError};
use crate::exchange::{Destination, Exchange};
use crate::ops::permit::Kind;
use crate::persist::ExchangeDef;
use crate::tables::{detached_table, encoded};
use crate::ConnId;

/// Exchange arguments RabbitMQ checks for equivalence.
pub(crate) const EXCHANGE_ARGS_CHECKED: [&str; 1] = ["alternate-exchange"];

/// Compares declared arguments with existing ones as RabbitMQ does.
pub(crate) fn check_args(
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
    pub(crate) fn exchange_declare(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: ExchangeDeclare,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        let name = m.exchange.clone();
        let kind_str = m.kind.as_str();
        let v = self
            .topology
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(vhost_gone)?;
        if name.is_empty() {
            // RabbitMQ 3.10 refuses the default exchange, passive or not.
            return Err(default_exchange_refused());
        }
        if m.passive {
            if !v.exchanges.contains_key(&name) {
                return Err(no_exchange(&name, &vname));
            }
        } else {
            let exists = v.exchanges.contains_key(&name);
            self.permit(conn, Kind::Exchange, &name, Perm::Configure)?;
            if !exists {
                // A new exchange with an alternate exchange: read on it,
                // write on the alternate (RabbitMQ's order).
                if let Some(ae) = m
                    .arguments
                    .get("alternate-exchange")
                    .and_then(|a| a.as_str())
                {
                    self.permit(conn, Kind::Exchange, &name, Perm::Read)?;
                    self.permit(conn, Kind::Exchange, ae, Perm::Write)?;
                }
            }
            let v = self
                .topology
                .vhosts
                .get_mut(&*vname)
                .ok_or_else(vhost_gone)?;
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
                    self.durability
                        .persist
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
            self.sessions
                .send(conn, ch, &Method::ExchangeDeclareOk(Default::default()));
        }
        Ok(())
    }

    pub(crate) fn exchange_delete(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: ExchangeDelete,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        if m.exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        if m.exchange.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                m.exchange
            )));
        }
        self.permit(conn, Kind::Exchange, &m.exchange, Perm::Configure)?;
        let v = self
            .topology
            .vhosts
            .get_mut(&*vname)
            .ok_or_else(vhost_gone)?;
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
            self.sessions
                .send(conn, ch, &Method::ExchangeDeleteOk(Default::default()));
        }
        Ok(())
    }

    /// Deletes an exchange, its bindings, and bindings that lead to it.
    pub(crate) fn delete_exchange_internal(&mut self, vname: &str, name: &ShortStr) {
        let Some(v) = self.topology.vhosts.get_mut(vname) else {
            return;
        };
        let Some(ex) = v.remove_exchange(name) else {
            return;
        };
        if ex.durable {
            let _ = self.durability.persist.delete_exchange(vname, name);
        }
        if ex.delayed {
            self.drop_delayed(vname, name, ex.durable);
        }
        let Some(v) = self.topology.vhosts.get_mut(vname) else {
            return;
        };
        let sources = v.unbind_destination(&Destination::Exchange(name.clone()));
        for s in sources {
            self.maybe_auto_delete_exchange(vname, &s);
        }
    }

    /// Auto-delete exchanges go when their last binding is removed.
    pub(crate) fn maybe_auto_delete_exchange(&mut self, vname: &str, name: &ShortStr) {
        let Some(v) = self.topology.vhosts.get(vname) else {
            return;
        };
        if let Some(ex) = v.exchanges.get(name) {
            if ex.auto_delete && ex.bindings.is_empty() {
                self.delete_exchange_internal(vname, name);
            }
        }
    }
}
