//! Method dispatch for an open channel, and channel-class methods.

use amqp_codec::{reply, Method};

use crate::assembly::Assembly;
use crate::broker::Broker;
use crate::error::{not_transactional, AmqpError};
use crate::quorum::ReturnCause;
use crate::ConnId;

impl Broker {
    /// Handles one complete method (content methods arrive via `publish`).
    pub(crate) fn handle_method(
        &mut self,
        conn: ConnId,
        ch: u16,
        method: Method,
    ) -> Result<(), AmqpError> {
        match method {
            Method::ChannelOpen(_) => Err(AmqpError::channel_error("second 'channel.open' seen")),
            Method::ChannelClose(_) => {
                self.cleanup_channel(conn, ch);
                if let Some(c) = self.sessions.conns.get_mut(&conn) {
                    c.channels.remove(&ch);
                }
                self.sessions
                    .send(conn, ch, &Method::ChannelCloseOk(Default::default()));
                Ok(())
            }
            Method::ChannelCloseOk(_) => Ok(()),
            Method::ChannelFlow(f) => {
                if !f.active {
                    // RabbitMQ 3.x does not implement client-requested flow stops.
                    return Err(AmqpError::not_implemented("active=false"));
                }
                let c = self.sessions.channel_mut(conn, ch)?;
                c.flow_active = f.active;
                self.sessions.send(
                    conn,
                    ch,
                    &Method::ChannelFlowOk(amqp_codec::ChannelFlowOk { active: f.active }),
                );
                if f.active {
                    self.dispatch_channel(conn, ch);
                }
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::ExchangeDeclare(m) => self.exchange_declare(conn, ch, m),
            Method::ExchangeDelete(m) => self.exchange_delete(conn, ch, m),
            Method::ExchangeBind(m) => self.exchange_bind(conn, ch, m),
            Method::ExchangeUnbind(m) => self.exchange_unbind(conn, ch, m),
            Method::QueueDeclare(m) => self.queue_declare(conn, ch, m),
            Method::QueueBind(m) => self.queue_bind(conn, ch, m),
            Method::QueueUnbind(m) => self.queue_unbind(conn, ch, m),
            Method::QueuePurge(m) => self.queue_purge(conn, ch, m),
            Method::QueueDelete(m) => self.queue_delete(conn, ch, m),
            Method::BasicQos(m) => self.basic_qos(conn, ch, m),
            Method::BasicConsume(m) => self.basic_consume(conn, ch, m),
            Method::BasicCancel(m) => self.basic_cancel(conn, ch, m),
            Method::BasicGet(m) => self.basic_get(conn, ch, m),
            Method::BasicAck(m) => self.settle(conn, ch, m.delivery_tag, m.multiple, true, false),
            Method::BasicNack(m) => {
                self.settle(conn, ch, m.delivery_tag, m.multiple, false, m.requeue)
            }
            Method::BasicReject(m) => {
                self.settle(conn, ch, m.delivery_tag, false, false, m.requeue)
            }
            Method::BasicRecover(m) => self.basic_recover(conn, ch, m.requeue, true),
            Method::BasicRecoverAsync(m) => self.basic_recover(conn, ch, m.requeue, false),
            Method::ConfirmSelect(m) => {
                let c = self.sessions.channel_mut(conn, ch)?;
                if c.tx.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                c.confirm = true;
                if !m.nowait {
                    self.sessions
                        .send(conn, ch, &Method::ConfirmSelectOk(Default::default()));
                }
                Ok(())
            }
            Method::TxSelect(_) => {
                let c = self.sessions.channel_mut(conn, ch)?;
                if c.confirm {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                if c.tx.is_none() {
                    c.tx = Some(Default::default());
                }
                self.sessions
                    .send(conn, ch, &Method::TxSelectOk(Default::default()));
                Ok(())
            }
            Method::TxCommit(_) => self.tx_commit(conn, ch),
            Method::TxRollback(_) => {
                let c = self.sessions.channel_mut(conn, ch)?;
                match c.tx.as_mut() {
                    None => Err(not_transactional()),
                    Some(tx) => {
                        *tx = Default::default();
                        self.sessions
                            .send(conn, ch, &Method::TxRollbackOk(Default::default()));
                        Ok(())
                    }
                }
            }
            other => Err(AmqpError::new(
                reply::COMMAND_INVALID,
                format!(
                    "method {} is not valid here (class {}, method {})",
                    other.name(),
                    other.class_id(),
                    other.method_id()
                ),
            )),
        }
    }

    /// Releases what a channel holds: requeues unacked messages (in their
    /// original positions) and removes its consumers.
    pub(crate) fn cleanup_channel(&mut self, conn: ConnId, ch_id: u16) {
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return;
        };
        let vhost = c.info.vhost.clone();
        let Some(ch) = c.channels.get_mut(&ch_id) else {
            return;
        };
        self.global.retire_channel(&mut ch.stats);
        ch.assembly = Assembly::Idle;
        ch.tx = None;
        ch.confirm_pending.clear();
        ch.commit_wait = None;
        let unacked: Vec<_> = ch.unacked.drain(..).collect();
        let consumers: Vec<_> = ch.consumers.drain().collect();
        self.durability.stop_waiting(conn, ch_id);
        let mut touched = Vec::new();
        for u in unacked {
            if let Some(q) = self
                .topology
                .vhosts
                .get_mut(&*vhost)
                .and_then(|v| v.queues.get_mut(&u.queue))
            {
                if q.kind.is_quorum() {
                    self.return_to_quorum(&vhost, &u.queue, u.msg, ReturnCause::ConsumerGone);
                } else {
                    q.requeue(u.msg, self.arena.as_ref());
                }
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
            } else {
                self.arena.release(u.msg.loc());
            }
        }
        for (tag, k) in consumers {
            if let Some(q) = self
                .topology
                .vhosts
                .get_mut(&*vhost)
                .and_then(|v| v.queues.get_mut(&k.queue))
            {
                q.remove_consumer(conn, ch_id, &tag);
            }
            self.maybe_auto_delete_queue(&vhost, &k.queue);
            if !touched.contains(&k.queue) {
                touched.push(k.queue);
            }
        }
        for q in touched {
            self.dispatch(&vhost, &q);
        }
    }
}
