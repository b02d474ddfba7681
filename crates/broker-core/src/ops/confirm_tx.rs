//! Publisher confirms (recording and emitting them) and tx.commit.

use amqp_codec::Method;

use crate::broker::Broker;
use crate::error::{not_transactional, AmqpError};
use crate::ConnId;

impl Broker {
    /// Records a publish to confirm (`ack`) or refuse once `seq` is durable
    /// (0 = at once). Confirms leave in publish order.
    pub(crate) fn confirm(&mut self, conn: ConnId, ch: u16, tag: u64, seq: u64, ack: bool) {
        let synced = self.synced_seq;
        let Ok(c) = self.channel_mut(conn, ch) else {
            return;
        };
        if seq <= synced && c.confirm_pending.is_empty() {
            let first = c.confirm_ready.is_empty();
            c.confirm_ready.push((tag, ack));
            if first {
                self.confirm_dirty.push((conn, ch));
            }
        } else {
            c.confirm_pending.push_back((tag, seq, ack));
            self.waiting_sync.insert((conn, ch));
        }
    }

    /// Sends the confirms that became ready in this batch: runs of acks as
    /// one basic.ack with `multiple`, refusals as single basic.nacks.
    pub(crate) fn emit_ready_confirms(&mut self) {
        let mut dirty = std::mem::take(&mut self.confirm_dirty);
        for (conn, id) in dirty.drain(..) {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.closing {
                continue;
            }
            let Some(ch) = c.channels.get_mut(&id) else {
                continue;
            };
            if ch.confirm_ready.is_empty() {
                continue;
            }
            self.dirty.push(conn);
            let id = &id;
            {
                let mut last_ack = None;
                for (tag, ack) in ch.confirm_ready.drain(..) {
                    if ack {
                        last_ack = Some(tag);
                        continue;
                    }
                    if let Some(t) = last_ack.take() {
                        amqp_codec::encode_method_frame(
                            &mut c.out,
                            *id,
                            &Method::BasicAck(amqp_codec::BasicAck {
                                delivery_tag: t,
                                multiple: true,
                            }),
                        );
                    }
                    amqp_codec::encode_method_frame(
                        &mut c.out,
                        *id,
                        &Method::BasicNack(amqp_codec::BasicNack {
                            delivery_tag: tag,
                            multiple: false,
                            requeue: false,
                        }),
                    );
                }
                if let Some(t) = last_ack {
                    amqp_codec::encode_method_frame(
                        &mut c.out,
                        *id,
                        &Method::BasicAck(amqp_codec::BasicAck {
                            delivery_tag: t,
                            multiple: true,
                        }),
                    );
                }
            }
        }
    }

    pub(crate) fn tx_commit(&mut self, conn: ConnId, ch: u16) -> Result<(), AmqpError> {
        let vname = self.vhost_of(conn)?;
        let c = self.channel_mut(conn, ch)?;
        let Some(tx) = c.tx.as_mut() else {
            return Err(not_transactional());
        };
        let tx = std::mem::take(tx);
        let mut wait = 0;
        for p in &tx.publishes {
            wait = wait.max(
                self.route_and_enqueue(conn, ch, &vname, &p.as_ref(), None)?
                    .0,
            );
        }
        let settled = !tx.settles.is_empty();
        for (tag, multiple, ack, requeue) in tx.settles {
            self.settle_now(conn, ch, tag, multiple, ack, requeue)?;
        }
        if settled {
            // commit-ok promises the acks are durable too: an acked
            // persistent message must never come back after a crash.
            wait = wait.max(self.persist.last_seq());
        }
        if wait > self.synced_seq {
            self.channel_mut(conn, ch)?.commit_wait = Some(wait);
            self.waiting_sync.insert((conn, ch));
        } else {
            self.send(conn, ch, &Method::TxCommitOk(Default::default()));
        }
        Ok(())
    }
}
