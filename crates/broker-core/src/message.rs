//! Messages and their place in queues.
//!
//! A published message is stored once in an `Arc<Message>` and shared by
//! every queue it is routed to; queues hold small [`QueuedMessage`] entries.

use std::sync::Arc;

use amqp_codec::ShortStr;
use bytes::Bytes;

use crate::persist::MessageId;

/// One published message; immutable once routed.
#[derive(Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// Content-header property bytes exactly as published, sent on unchanged.
    pub properties: Bytes,
    pub body: Bytes,
    /// delivery_mode == 2.
    pub persistent: bool,
}

/// Bodies up to this size are copied out of the socket read buffer into the
/// message's own allocation; larger ones stay zero-copy slices (they make up
/// most of the buffer they sit in anyway).
pub const BODY_COPY_BYTES_MAX: usize = 16 * 1024;

impl Message {
    /// Builds a message that owns compact storage: the strings, properties
    /// and (small) body are copied into ONE allocation, so a queued message
    /// never pins the much larger socket read buffer it arrived in.
    pub fn compact(
        exchange: &str,
        routing_key: &str,
        properties: &[u8],
        body: Bytes,
        persistent: bool,
    ) -> Message {
        let copy_body = body.len() <= BODY_COPY_BYTES_MAX;
        let body_len = if copy_body { body.len() } else { 0 };
        let mut buf = bytes::BytesMut::with_capacity(
            exchange.len() + routing_key.len() + properties.len() + body_len,
        );
        buf.extend_from_slice(exchange.as_bytes());
        buf.extend_from_slice(routing_key.as_bytes());
        buf.extend_from_slice(properties);
        if copy_body {
            buf.extend_from_slice(&body);
        }
        let all = buf.freeze();
        let (e, r, p) = (exchange.len(), routing_key.len(), properties.len());
        // The slices are of valid UTF-8 copied from `&str`s, within 255 bytes.
        let exchange = ShortStr::from_bytes(all.slice(0..e)).unwrap_or_default();
        let routing_key = ShortStr::from_bytes(all.slice(e..e + r)).unwrap_or_default();
        let properties = all.slice(e + r..e + r + p);
        let body = if copy_body {
            all.slice(e + r + p..)
        } else {
            body
        };
        Message {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
        }
    }
}

/// A message's entry in one queue.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub message: Arc<Message>,
    /// Enqueue order within the queue: requeued messages go back to the
    /// position this number gives, as RabbitMQ does.
    pub position: u64,
    pub redelivered: bool,
    /// Set when the message is held in the durable store for this queue.
    pub store_id: Option<MessageId>,
    /// When the message expires (milliseconds on [`now_ms`]'s clock); `u64::MAX` = never.
    pub expires_at_ms: u64,
}

/// Milliseconds since the broker started, from the monotonic clock.
/// Reading the clock is not I/O; keeping it here lets TTLs be computed
/// without the server passing time around.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}
