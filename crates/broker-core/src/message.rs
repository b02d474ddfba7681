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
