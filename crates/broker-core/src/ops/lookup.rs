//! Lookups the handlers share: a connection's vhost, a queue by name (404).

use crate::broker::Broker;
use crate::error::{no_connection, no_queue, AmqpError};
use crate::queue::Queue;
use crate::ConnId;

impl Broker {
    pub(crate) fn vhost_of(&self, conn: ConnId) -> Result<std::sync::Arc<str>, AmqpError> {
        self.conns
            .get(&conn)
            .map(|c| c.info.vhost.clone())
            .ok_or_else(no_connection)
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
}
