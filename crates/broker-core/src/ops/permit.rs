//! Permission checks, RabbitMQ's `check_resource_access` and
//! `check_topic_access` as `rabbit_channel` applies them. Every check of
//! every handler goes through here; the texts are in `error.rs`.
//!
//! basic.publish is checked through [`check_publish`], which both the
//! general path and (through it) the fast path call; its result is kept
//! per channel ([`PublishPermits`]) so a publisher pays for the regex once
//! per exchange, and is dropped when any permission changes
//! (`Access::generation`).

use std::sync::Arc;

use amqp_codec::{bytes_eq, ShortStr};

use crate::access::{Access, Perm, TopicRule};
use crate::broker::Broker;
use crate::error::{resource_refused, topic_refused, AmqpError};
use crate::ConnId;

/// Resource kinds permissions name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Exchange,
    Queue,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exchange => "exchange",
            Kind::Queue => "queue",
        }
    }
}

/// Most exchanges a channel remembers as publishable (RabbitMQ's
/// `?MAX_PERMISSION_CACHE_SIZE`).
const PUBLISH_PERMITS_ENTRIES_MAX: usize = 12;

/// A channel's cache of passed publish checks.
#[derive(Default)]
pub(crate) struct PublishPermits {
    /// `Access::generation` the entries were checked at.
    generation: u64,
    /// Exchanges with write permission, each with the topic rule that
    /// applies to its routing keys, if any.
    entries: Vec<(ShortStr, Option<Arc<TopicRule>>)>,
}

/// The name a resource is checked under: the default exchange is
/// `amq.default`.
fn checked_name(kind: Kind, name: &str) -> &str {
    if kind == Kind::Exchange && name.is_empty() {
        "amq.default"
    } else {
        name
    }
}

/// One resource check for `user` in `vhost`.
pub(crate) fn check(
    access: &Access,
    user: &str,
    vhost: &str,
    kind: Kind,
    name: &str,
    perm: Perm,
) -> Result<(), AmqpError> {
    let name = checked_name(kind, name);
    match access.permission(user, vhost) {
        Some(p) if p.allows(perm, name) => Ok(()),
        _ => Err(resource_refused(kind.name(), name, vhost, user)),
    }
}

/// Write permission on `exchange` for basic.publish, from the channel's
/// cache when it is current. Returns the topic rule that applies to the
/// exchange's routing keys (checked by [`check_topic`] once the exchange
/// is known to be a topic exchange).
pub(crate) fn check_publish(
    access: &Access,
    user: &str,
    vhost: &str,
    permits: &mut PublishPermits,
    exchange: &str,
) -> Result<Option<Arc<TopicRule>>, AmqpError> {
    if permits.generation == access.generation {
        if let Some((_, rule)) = permits
            .entries
            .iter()
            .find(|(x, _)| bytes_eq(x.as_bytes(), exchange.as_bytes()))
        {
            return Ok(rule.clone());
        }
    } else {
        permits.generation = access.generation;
        permits.entries.clear();
    }
    check(access, user, vhost, Kind::Exchange, exchange, Perm::Write)?;
    let rule = access.topic_rule(user, vhost, exchange).cloned();
    if permits.entries.len() >= PUBLISH_PERMITS_ENTRIES_MAX {
        permits.entries.remove(0);
    }
    permits
        .entries
        .push((ShortStr::from(exchange), rule.clone()));
    Ok(rule)
}

/// Topic permission on a routing key of a topic exchange (`write`: a
/// publish; else a binding). No rule: allowed.
pub(crate) fn check_topic(
    rule: Option<&TopicRule>,
    write: bool,
    routing_key: &str,
    exchange: &str,
    vhost: &str,
    user: &str,
) -> Result<(), AmqpError> {
    match rule {
        Some(r) if !r.allows(write, routing_key, user, "") => {
            Err(topic_refused(routing_key, exchange, vhost, user))
        }
        _ => Ok(()),
    }
}

impl Broker {
    /// [`check`] for the user and vhost of `conn`.
    pub(crate) fn permit(
        &self,
        conn: ConnId,
        kind: Kind,
        name: &str,
        perm: Perm,
    ) -> Result<(), AmqpError> {
        let c = self
            .sessions
            .conns
            .get(&conn)
            .ok_or_else(crate::error::no_connection)?;
        check(&self.access, &c.info.user, &c.info.vhost, kind, name, perm)
    }

    /// Topic read permission for binding `routing_key` from `exchange`
    /// (a topic exchange) on `conn`.
    pub(crate) fn permit_topic_read(
        &self,
        conn: ConnId,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        let c = self
            .sessions
            .conns
            .get(&conn)
            .ok_or_else(crate::error::no_connection)?;
        let (user, vhost) = (&c.info.user, &c.info.vhost);
        let rule = self.access.topic_rule(user, vhost, exchange);
        check_topic(
            rule.map(|r| &**r),
            false,
            routing_key,
            exchange,
            vhost,
            user,
        )
    }
}

impl Broker {
    /// What a new queue needs beyond configure (RabbitMQ checks it only for
    /// queues that do not exist yet): room under the vhost's `max-queues`,
    /// and with `x-dead-letter-exchange`, read on the queue and write on
    /// the dead-letter exchange.
    pub(crate) fn check_new_queue_access(
        &self,
        conn: ConnId,
        vhost: &str,
        name: &str,
        arguments: &amqp_codec::FieldTable,
    ) -> Result<(), AmqpError> {
        let limit = self.access.vhost_limits(vhost).max_queues;
        let count = self
            .topology
            .vhosts
            .get(vhost)
            .map_or(0, |v| v.queues.len());
        if crate::access::reached(limit, count) {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{vhost}' ({limit}) is reached"
            )));
        }
        if let Some(dlx) = arguments
            .get("x-dead-letter-exchange")
            .and_then(|a| a.as_str())
        {
            self.permit(conn, Kind::Queue, name, Perm::Read)?;
            self.permit(conn, Kind::Exchange, dlx, Perm::Write)?;
        }
        Ok(())
    }
}
