//! Publisher confirms (recording and emitting them) and tx.commit.

use amqp_codec::{encode_method_frame, Method};
use bytes::BytesMut;

use crate::broker::Broker;
use crate::error::{not_transactional, AmqpError};
use crate::persist::Seq;
use crate::session::Channel;
use crate::ConnId;

impl Broker {
    /// Records a publish to confirm (`ack`) or refuse once `seq` is durable
    /// (0 = at once). Confirms leave in publish order.
    pub(crate) fn confirm(&mut self, conn: ConnId, ch: u16, tag: u64, seq: u64, ack: bool) {
        let synced = self.durability.synced_seq;
        let Ok(c) = self.sessions.channel_mut(conn, ch) else {
            return;
        };
        if seq <= synced && c.confirm_pending.is_empty() {
            let first = c.confirm_ready.is_empty();
            c.confirm_ready.push((tag, ack));
            if first {
                self.durability.confirm_dirty.push((conn, ch));
            }
        } else {
            c.confirm_pending.push_back((tag, seq, ack));
            self.durability.wait(conn, ch);
        }
    }

    /// Sends the confirms that became ready in this batch: runs of acks as
    /// one basic.ack with `multiple`, refusals as single basic.nacks.
    pub(crate) fn emit_ready_confirms(&mut self) {
        let mut dirty = std::mem::take(&mut self.durability.confirm_dirty);
        for (conn, id) in dirty.drain(..) {
            let Some(c) = self.sessions.conns.get_mut(&conn) else {
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
            self.sessions.dirty.push(conn);
            let id = &id;
            {
                let mut last_ack = None;
                for (tag, ack) in ch.confirm_ready.drain(..) {
                    if ack {
                        self.global.confirmed += 1;
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
        let vname = self.sessions.vhost_of(conn)?;
        let c = self.sessions.channel_mut(conn, ch)?;
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
            wait = wait.max(self.durability.persist.last_seq());
        }
        if wait > self.durability.synced_seq {
            self.sessions.channel_mut(conn, ch)?.commit_wait = Some(wait);
            self.durability.wait(conn, ch);
        } else {
            self.sessions
                .send(conn, ch, &Method::TxCommitOk(Default::default()));
        }
        Ok(())
    }

    /// The store has everything up to `seq` on disk: release confirms and
    /// commit-oks waiting for it.
    pub(crate) fn synced(&mut self, seq: Seq) {
        if !self.durability.advance(seq) {
            return;
        }
        self.walk_waiting_sync(|(conn, ch_id), ch, out, confirm_dirty| {
            if !ch.confirm_pending.is_empty() {
                confirm_dirty.push((conn, ch_id));
            }
            while let Some(&(tag, s, ack)) = ch.confirm_pending.front() {
                if s > seq {
                    break;
                }
                ch.confirm_pending.pop_front();
                ch.confirm_ready.push((tag, ack));
            }
            if ch.commit_wait.is_some_and(|s| s <= seq) {
                ch.commit_wait = None;
                encode_method_frame(out, ch_id, &Method::TxCommitOk(Default::default()));
            }
            !ch.confirm_pending.is_empty() || ch.commit_wait.is_some()
        });
    }

    /// The store failed: nack everything waiting for it; a connection with
    /// a commit waiting is closed (541), after the nacks.
    pub(crate) fn store_failed(&mut self) {
        let mut failed_commits: Vec<ConnId> = Vec::new();
        self.walk_waiting_sync(|(conn, ch_id), ch, out, _| {
            for (tag, _, _) in ch.confirm_pending.drain(..) {
                encode_method_frame(
                    out,
                    ch_id,
                    &Method::BasicNack(amqp_codec::BasicNack {
                        delivery_tag: tag,
                        multiple: false,
                        requeue: false,
                    }),
                );
            }
            if ch.commit_wait.take().is_some() {
                failed_commits.push(conn);
            }
            false
        });
        for conn in failed_commits {
            let err = AmqpError::internal("store failed; transaction not durable").during(90, 20);
            self.close_connection(conn, err);
        }
    }

    /// The one walk over the channels waiting for the store (`synced` and
    /// `store_failed`): `visit` gets each such channel with its
    /// connection's output (the connection is marked for flushing) and the
    /// list of channels with ready confirms, and returns whether the channel
    /// still waits. O(waiting channels).
    fn walk_waiting_sync(
        &mut self,
        mut visit: impl FnMut(
            (ConnId, u16),
            &mut Channel,
            &mut BytesMut,
            &mut Vec<(ConnId, u16)>,
        ) -> bool,
    ) {
        let Broker {
            sessions,
            durability,
            ..
        } = self;
        let waiting: Vec<(ConnId, u16)> = durability.waiting_sync.iter().copied().collect();
        for key in waiting {
            let (conn, ch_id) = key;
            let Some(c) = sessions.conns.get_mut(&conn) else {
                durability.stop_waiting(conn, ch_id);
                continue;
            };
            let Some(ch) = c.channels.get_mut(&ch_id) else {
                durability.stop_waiting(conn, ch_id);
                continue;
            };
            sessions.dirty.push(conn);
            if !visit(key, ch, &mut c.out, &mut durability.confirm_dirty) {
                durability.stop_waiting(conn, ch_id);
            }
        }
    }
}
