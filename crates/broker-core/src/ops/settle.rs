//! basic.ack / nack / reject and basic.recover: settling unacked deliveries.

use amqp_codec::{Method, ShortStr};

use crate::broker::Broker;
use crate::error::{unknown_delivery_tag, AmqpError};
use crate::quorum::ReturnCause;
use crate::ConnId;

impl Broker {
    /// basic.ack / nack / reject; buffered when the channel is transactional.
    pub(crate) fn settle(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: u64,
        multiple: bool,
        ack: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let limit = self.config.tx_uncommitted_bytes_max;
        let c = self.sessions.channel_mut(conn, ch)?;
        if let Some(tx) = c.tx.as_mut() {
            // Validate now so an unknown tag fails at once, as in RabbitMQ.
            let known = (multiple && tag == 0) || c.unacked.iter().any(|u| u.tag == tag);
            if !known {
                return Err(unknown_delivery_tag(tag));
            }
            tx.admit(0, limit)?;
            tx.settles.push((tag, multiple, ack, requeue));
            return Ok(());
        }
        self.settle_now(conn, ch, tag, multiple, ack, requeue)
    }

    pub(crate) fn settle_now(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: u64,
        multiple: bool,
        ack: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let vname = self.sessions.vhost_of(conn)?;
        let c = self.sessions.channel_mut(conn, ch)?;
        let taken: Vec<crate::session::Unacked> = if multiple {
            if tag != 0 && !c.unacked.iter().any(|u| u.tag == tag) {
                return Err(unknown_delivery_tag(tag));
            }
            let upto = if tag == 0 { u64::MAX } else { tag };
            let n = c.unacked.partition_point(|u| u.tag <= upto);
            c.unacked.drain(..n).collect()
        } else {
            let Ok(i) = c.unacked.binary_search_by_key(&tag, |u| u.tag) else {
                return Err(unknown_delivery_tag(tag));
            };
            c.unacked.remove(i).into_iter().collect()
        };
        if ack {
            c.stats.ack += taken.len() as u64;
        }
        let touched = self.release_quiet(
            conn,
            ch,
            &vname,
            taken,
            ack || !requeue,
            requeue && !ack,
            !ack && !requeue,
        );
        for q in touched {
            self.dispatch(&vname, &q);
        }
        Ok(())
    }

    /// Finishes unacked deliveries: `drop` removes them (ack, or
    /// nack/reject without requeue; `rejected` dead-letters them),
    /// `requeue` puts them back. Returns the queues touched; the caller
    /// re-dispatches them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn release_quiet(
        &mut self,
        conn: ConnId,
        ch: u16,
        vname: &str,
        taken: Vec<crate::session::Unacked>,
        drop: bool,
        requeue: bool,
        rejected: bool,
    ) -> Vec<ShortStr> {
        let mut touched: Vec<ShortStr> = Vec::new();
        for u in taken {
            if let Some(k) = u.consumer.as_ref().and_then(|t| {
                self.sessions
                    .conns
                    .get_mut(&conn)?
                    .channels
                    .get_mut(&ch)?
                    .consumers
                    .get_mut(t)
            }) {
                k.unacked = k.unacked.saturating_sub(1);
            }
            let Some(q) = self
                .topology
                .vhosts
                .get_mut(vname)
                .and_then(|v| v.queues.get_mut(&u.queue))
            else {
                // Its queue was deleted meanwhile: only the arena holds it.
                self.arena.release(u.msg.loc());
                continue;
            };
            if requeue && q.kind.is_quorum() {
                let qn = u.queue.clone();
                self.return_to_quorum(vname, &qn, u.msg, ReturnCause::Settled);
            } else if requeue {
                q.requeue(u.msg, self.arena.as_ref());
            } else if drop && !rejected {
                q.stats.ack += 1;
                q.forget_delivery_count(u.msg);
                let durable = q.durable;
                self.settle_message(vname, &u.queue, durable, u.msg);
            } else if drop {
                let qn = u.queue.clone();
                self.dead_letter(vname, &qn, u.msg, "rejected");
            }
            if !touched.contains(&u.queue) {
                touched.push(u.queue);
            }
        }
        touched
    }

    /// Requeues the channel's unacked messages; recover-ok (if `reply`) goes
    /// out before the redeliveries, as RabbitMQ orders them.
    pub(crate) fn basic_recover(
        &mut self,
        conn: ConnId,
        ch: u16,
        requeue: bool,
        reply: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let vname = self.sessions.vhost_of(conn)?;
        let c = self.sessions.channel_mut(conn, ch)?;
        let taken: Vec<_> = c.unacked.drain(..).collect();
        let touched = self.release_quiet(conn, ch, &vname, taken, false, true, false);
        if reply {
            self.sessions
                .send(conn, ch, &Method::BasicRecoverOk(Default::default()));
        }
        for q in touched {
            self.dispatch(&vname, &q);
        }
        Ok(())
    }
}
