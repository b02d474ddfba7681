//! Management sessions: each management write runs as AMQP methods on a
//! short-lived internal connection (like RabbitMQ's direct connections),
//! so the rules (name checks, equivalence, exclusivity, if-empty, ...) are
//! the handlers' own, in one place. The connection is registered with a
//! sink that drops output, never listed (`Conn::internal`), and forgotten
//! when the call ends (which requeues what a get left unacknowledged).

use std::sync::Arc;

use amqp_codec::{
    parse_frame, ContentHeader, FieldTable, Method, FRAME_BODY, FRAME_HEADER, FRAME_METHOD,
};
use bytes::{Bytes, BytesMut};

use crate::broker::Broker;
use crate::error::AmqpError;
use crate::session::{Channel, ConnDetails, ConnInfo, ConnSink};
use crate::ConnId;

/// The channel a management session uses.
pub(crate) const DIRECT_CHANNEL: u16 = 1;

/// Messages one `POST /get` may fetch (RabbitMQ takes any count; ours is
/// bounded so one call cannot hold the lock for long).
pub const DIRECT_GET_COUNT_MAX: u32 = 10_000;

/// Output of a management session goes nowhere (it is read from the
/// connection's buffer before the session ends).
struct NullSink;

impl ConnSink for NullSink {
    fn send(&self, _bytes: bytes::Bytes) {}
    fn pending_bytes(&self) -> usize {
        0
    }
}

/// How `Broker::mgmt_get` settles what it fetched (RabbitMQ's `ackmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetAckMode {
    /// Fetched and put back (redelivered).
    AckRequeueTrue,
    /// Fetched and removed.
    AckRequeueFalse,
    /// Rejected and put back.
    RejectRequeueTrue,
    /// Rejected without requeue (dead-lettered if the queue says so).
    RejectRequeueFalse,
}

/// A message read by `Broker::mgmt_get`.
#[derive(Debug, Clone)]
pub struct GotMessage {
    /// Delivered before.
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Messages left in the queue after this one.
    pub message_count: u32,
    /// Content properties, encoded (flags + fields).
    pub properties: Bytes,
    /// The body.
    pub body: Bytes,
}

/// A queue as `PUT /api/queues/{vhost}/{name}` declares it.
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// An exchange as `PUT /api/exchanges/{vhost}/{name}` declares it.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// A binding for `POST`/`DELETE /api/bindings/...`.
#[derive(Debug, Clone, Default)]
pub struct BindingSpec {
    pub source: String,
    pub destination: String,
    /// The destination is a queue (else an exchange).
    pub to_queue: bool,
    pub routing_key: String,
    pub arguments: FieldTable,
}

/// A short string from the API, or the 400-class error for one too long.
pub(crate) fn short(s: &str) -> Result<amqp_codec::ShortStr, AmqpError> {
    amqp_codec::ShortStr::try_from_str(s)
        .map_err(|_| AmqpError::precondition_failed("name longer than 255 bytes"))
}

impl Broker {
    /// Runs `f` on a fresh management session in `vhost` as `user`;
    /// returns its result and the frames it produced.
    pub(crate) fn direct<R>(
        &mut self,
        vhost: &str,
        user: &str,
        f: impl FnOnce(&mut Broker, ConnId) -> Result<R, AmqpError>,
    ) -> Result<(R, BytesMut), AmqpError> {
        let Some(vkey) = self.topology.vhost_key(vhost).cloned() else {
            return Err(AmqpError::not_found(format!("no vhost '{vhost}'")));
        };
        let conn = self.register_connection(ConnInfo {
            user: user.to_string(),
            vhost: vkey,
            frame_max: self.config.frame_size_max_bytes,
            channel_max: 0,
            consumer_cancel_notify: false,
            connection_blocked: false,
            sink: Arc::new(NullSink),
            details: ConnDetails::default(),
        });
        if let Some(c) = self.sessions.conns.get_mut(&conn) {
            c.internal = true;
            c.channels.insert(DIRECT_CHANNEL, Box::new(Channel::new()));
        }
        let result = f(self, conn);
        // What the session published is delivered, its cache forgotten,
        // before the session goes.
        self.end_run();
        let out = self
            .sessions
            .conns
            .get_mut(&conn)
            .map(|c| c.out.split())
            .unwrap_or_default();
        self.forget_connection(conn);
        result.map(|r| (r, out))
    }

    /// Runs one method on a management session.
    pub(crate) fn direct_method(
        &mut self,
        vhost: &str,
        user: &str,
        method: Method,
    ) -> Result<BytesMut, AmqpError> {
        self.direct(vhost, user, |b, conn| {
            b.handle_method(conn, DIRECT_CHANNEL, method)
        })
        .map(|((), out)| out)
    }

    /// basic.get up to `count` times, settling as `mode` says.
    pub(crate) fn direct_get(
        &mut self,
        vhost: &str,
        user: &str,
        queue: &str,
        count: u32,
        mode: GetAckMode,
    ) -> Result<Vec<GotMessage>, AmqpError> {
        let queue = short(queue)?;
        let no_ack = mode == GetAckMode::AckRequeueFalse;
        let (got, _) = self.direct(vhost, user, |b, conn| {
            let mut got = Vec::new();
            let frame_max = b.config.frame_size_max_bytes;
            for _ in 0..count.min(DIRECT_GET_COUNT_MAX) {
                let get = Method::BasicGet(amqp_codec::BasicGet {
                    reserved_1: 0,
                    queue: queue.clone(),
                    no_ack,
                });
                b.handle_method(conn, DIRECT_CHANNEL, get)?;
                let mut out = b
                    .sessions
                    .conns
                    .get_mut(&conn)
                    .map(|c| c.out.split())
                    .unwrap_or_default();
                match decode_get(&mut out, frame_max) {
                    Some(m) => got.push(m),
                    None => break,
                }
            }
            if mode == GetAckMode::RejectRequeueFalse {
                // Tags 1..=n on the session's channel.
                for tag in 1..=got.len() as u64 {
                    b.settle(conn, DIRECT_CHANNEL, tag, false, false, false)?;
                }
            }
            // The other modes requeue (or never took) them when the
            // session is forgotten.
            Ok(got)
        })?;
        Ok(got)
    }
}

/// The message of a get-ok in `out` (None for get-empty or garbage).
fn decode_get(out: &mut BytesMut, frame_max: u32) -> Option<GotMessage> {
    let f = parse_frame(out, frame_max).ok()??;
    if f.kind != FRAME_METHOD {
        return None;
    }
    let Ok(Method::BasicGetOk(ok)) = Method::decode(f.payload) else {
        return None;
    };
    let h = parse_frame(out, frame_max).ok()??;
    if h.kind != FRAME_HEADER {
        return None;
    }
    let header = ContentHeader::decode(h.payload).ok()?;
    let size = usize::try_from(header.body_size).ok()?;
    let mut body = BytesMut::with_capacity(size.min(frame_max as usize * 4));
    while body.len() < size {
        let b = parse_frame(out, frame_max).ok()??;
        if b.kind != FRAME_BODY {
            return None;
        }
        body.extend_from_slice(&b.payload);
    }
    Some(GotMessage {
        redelivered: ok.redelivered,
        exchange: ok.exchange.to_string(),
        routing_key: ok.routing_key.to_string(),
        message_count: ok.message_count,
        properties: header.raw_properties,
        body: body.freeze(),
    })
}

/// True if `out` holds a basic.return (an unroutable mandatory publish).
pub(crate) fn returned(out: &mut BytesMut, frame_max: u32) -> bool {
    while let Ok(Some(f)) = parse_frame(out, frame_max) {
        if f.kind == FRAME_METHOD && matches!(Method::decode(f.payload), Ok(Method::BasicReturn(_)))
        {
            return true;
        }
    }
    false
}
