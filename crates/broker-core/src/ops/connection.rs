//! Connection-level handlers: registering and forgetting connections,
//! connection.close both ways, exceptions (`raise`), raw channel-0 output,
//! writer backpressure, the resource alarm.

use amqp_codec::{encode_method_frame, Method, ShortStr};
use bytes::BytesMut;

use crate::broker::{truncate, Broker};
use crate::error::AmqpError;
use crate::session::{Conn, ConnInfo};
use crate::ConnId;

impl Broker {
    /// Registers a connection that finished its handshake.
    pub(crate) fn register_connection(&mut self, info: ConnInfo) -> ConnId {
        let id = self.sessions.next_conn;
        self.sessions.next_conn += 1;
        // Admitted at connection.open by the server; checked again here, as
        // another connection may have taken the last place in between.
        let late_refusal = self.admission(&info.user, &info.vhost).err();
        self.sessions.track(id, &info.user, &info.vhost);
        self.sessions.conns.insert(
            id,
            Box::new(Conn {
                publish_blocked: false,
                internal: false,
                info,
                channels: Default::default(),
                out: BytesMut::new(),
                closing: false,
                exclusive_queues: Vec::new(),
                throttled: false,
            }),
        );
        if let Some(err) = late_refusal {
            self.close_connection(id, err.during(10, 40));
        }
        id
    }

    /// Forgets a connection: requeues its unacked messages, removes its
    /// consumers and deletes its exclusive queues.
    pub(crate) fn forget_connection(&mut self, conn: ConnId) {
        let Some(c) = self.sessions.conns.get(&conn) else {
            return;
        };
        let channels: Vec<u16> = c.channels.keys().collect();
        for ch in channels {
            self.cleanup_channel(conn, ch);
        }
        if let Some(mut c) = self.sessions.conns.remove(&conn) {
            self.sessions.untrack(conn, &c.info.user, &c.info.vhost);
            if !c.out.is_empty() {
                c.info.sink.send(c.out.split().freeze());
            }
            let vhost = c.info.vhost.clone();
            for q in c.exclusive_queues {
                self.delete_queue_internal(&vhost, &q);
            }
        }
        self.durability.forget_connection(conn);
    }

    /// The client sent connection.close: what its earlier frames produced
    /// (deliveries, ready confirms) goes out first, then close-ok as the
    /// last frame (nothing is delivered to a closing connection), then the
    /// connection is forgotten.
    pub(crate) fn close_by_client(&mut self, conn: ConnId) {
        self.emit_ready_confirms();
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return;
        };
        c.closing = true;
        let channels: Vec<u16> = c.channels.keys().collect();
        for ch in channels {
            self.cleanup_channel(conn, ch);
        }
        self.sessions
            .send(conn, 0, &Method::ConnectionCloseOk(Default::default()));
        self.forget_connection(conn);
    }

    /// Sends connection.close with `err` and stops processing this connection.
    pub(crate) fn close_connection(&mut self, conn: ConnId, err: AmqpError) {
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        self.sessions.dirty.push(conn);
        tracing::info!(conn, code = err.code, text = %err.text, "closing connection");
        encode_method_frame(
            &mut c.out,
            0,
            &Method::ConnectionClose(amqp_codec::ConnectionClose {
                reply_code: err.code,
                reply_text: ShortStr::from(truncate(&err.text)),
                class_id: err.class_id,
                method_id: err.method_id,
            }),
        );
        // Release what the connection held right away; the socket closes
        // after close-ok or a timeout.
        let channels: Vec<u16> = c.channels.keys().collect();
        for ch in channels {
            self.cleanup_channel(conn, ch);
        }
    }

    /// Sends a channel or connection exception.
    pub(crate) fn raise(&mut self, conn: ConnId, ch_id: u16, err: AmqpError) {
        // An error ends a run of publishes (see `entry.rs`).
        self.end_run();
        if err.is_connection_error() || ch_id == 0 {
            self.close_connection(conn, err);
            return;
        }
        tracing::debug!(conn, channel = ch_id, code = err.code, text = %err.text, "channel error");
        self.cleanup_channel(conn, ch_id);
        // Raised from any entry point (frames, ticks): the close must go out.
        self.sessions.mark_dirty(conn);
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return;
        };
        let Some(ch) = c.channels.get_mut(&ch_id) else {
            return;
        };
        ch.closing = true;
        encode_method_frame(
            &mut c.out,
            ch_id,
            &Method::ChannelClose(amqp_codec::ChannelClose {
                reply_code: err.code,
                reply_text: ShortStr::from(truncate(&err.text)),
                class_id: err.class_id,
                method_id: err.method_id,
            }),
        );
    }

    /// The writer for `conn` drained its backlog: resume held deliveries.
    pub(crate) fn writable(&mut self, conn: ConnId) {
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return;
        };
        if !c.throttled {
            return;
        }
        c.throttled = false;
        let vhost = c.info.vhost.clone();
        let queues: Vec<ShortStr> = c
            .channels
            .values()
            .flat_map(|ch| ch.consumers.values().map(|k| k.queue.clone()))
            .collect();
        for q in queues {
            self.dispatch(&vhost, &q);
        }
    }

    /// Raises (`Some(reason)`) or clears (`None`) the resource alarm. Like
    /// RabbitMQ, raising it tells no one: a connection is blocked when it
    /// next publishes ([`Broker::block_publisher`]). Clearing it unblocks
    /// the connections that were (connection.unblocked to those that asked
    /// for the notifications); the server then reads them again.
    pub(crate) fn alarm_changed(&mut self, reason: Option<String>) {
        if self.sessions.alarm == reason {
            return;
        }
        match (&self.sessions.alarm, &reason) {
            (None, Some(r)) => tracing::warn!("resource alarm: {r}; blocking publishers"),
            (Some(_), Some(r)) => tracing::debug!("resource alarm: {r}"),
            (_, None) => tracing::info!("resource alarm cleared; unblocking publishers"),
        }
        if reason.is_none() {
            for c in self.sessions.conns.values_mut() {
                if !std::mem::take(&mut c.publish_blocked) {
                    continue;
                }
                if c.info.connection_blocked && !c.closing {
                    let m = Method::ConnectionUnblocked(amqp_codec::ConnectionUnblocked);
                    encode_method_frame(&mut c.out, 0, &m);
                }
            }
            self.sessions.flush_all = true;
        }
        self.sessions.alarm = reason;
    }

    /// RabbitMQ's publisher throttle, the one rule: a basic.publish that
    /// arrives while the alarm is raised is not taken. Its connection is
    /// blocked: connection.blocked goes out once (if the client asked for
    /// it) and the server reads nothing more from it, that publish
    /// included, until the alarm clears. True if `conn` is blocked.
    #[cold]
    pub(crate) fn block_publisher(&mut self, conn: ConnId) -> bool {
        let Some(reason) = &self.sessions.alarm else {
            return false;
        };
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return false;
        };
        if c.closing {
            return false;
        }
        if !c.publish_blocked {
            c.publish_blocked = true;
            if c.info.connection_blocked {
                let m = Method::ConnectionBlocked(amqp_codec::ConnectionBlocked {
                    reason: ShortStr::from(truncate(reason)),
                });
                encode_method_frame(&mut c.out, 0, &m);
                self.sessions.mark_dirty(conn);
            }
        }
        true
    }
}
