//! Outgoing messages (persistent, with a message id, by default) and the deliveries handlers see.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// Exchange (`""` = the default exchange).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Body.
    pub body: Vec<u8>,
    /// Properties; `message_id` and `delivery_mode` are filled in by the publisher when unset.
    pub properties: BasicProperties,
    /// Publish with `mandatory` (an unroutable message is an error). On by default.
    pub mandatory: bool,
    /// Where the producer span's parent comes from (see [`Message::with_parent`]).
    pub(crate) trace: TracePropagation,
}

/// How a publish treats trace context.
#[derive(Debug, Clone, Default)]
pub(crate) enum TracePropagation {
    /// A producer span, child of the caller's current OpenTelemetry context, injected.
    #[default]
    Current,
    /// A producer span, child of this context, injected.
    Parent(opentelemetry::Context),
    /// No span, headers left as they are: the kit's retry / dead-letter copies keep the original
    /// creation context, so every attempt's consumer span has the same parent.
    Keep,
}

impl Message {
    /// A persistent, mandatory message with a fresh id.
    pub fn new(exchange: &str, routing_key: &str, body: impl Into<Vec<u8>>) -> Message {
        Message {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body: body.into(),
            properties: BasicProperties::default(),
            mandatory: true,
            trace: TracePropagation::Current,
        }
    }

    /// Sets the message id (for example an HTTP `Idempotency-Key`).
    pub fn with_id(mut self, id: &str) -> Message {
        self.properties = self.properties.with_message_id(id.into());
        self
    }

    /// Sets a long-string header.
    pub fn with_header(mut self, key: &str, value: &str) -> Message {
        let mut h = self.properties.headers().clone().unwrap_or_default();
        h.insert(key.into(), AMQPValue::LongString(value.into()));
        self.properties = self.properties.with_headers(h);
        self
    }

    /// Publishes without `mandatory` (unroutable messages are dropped silently, as the broker does).
    pub fn not_mandatory(mut self) -> Message {
        self.mandatory = false;
        self
    }

    /// Transient (delivery mode 1).
    pub fn transient(mut self) -> Message {
        self.properties = self.properties.with_delivery_mode(1);
        self
    }

    /// The message id (set by [`Message::ensure_defaults`] if missing).
    pub fn id(&self) -> Option<&str> {
        self.properties.message_id().as_ref().map(|s| s.as_str())
    }

    /// Fills in a message id and persistence when unset.
    pub fn ensure_defaults(&mut self) {
        if self.properties.message_id().is_none() {
            self.properties = self.properties.clone().with_message_id(new_id().into());
        }
        if self.properties.delivery_mode().is_none() {
            self.properties = self.properties.clone().with_delivery_mode(2);
        }
    }
}

/// A time-ordered unique id in UUIDv7 layout (48-bit Unix milliseconds, version 7, random bits).
pub fn new_id() -> String {
    let ms = now_millis() & 0xFFFF_FFFF_FFFF;
    let r1 = fastrand::u16(..) & 0x0FFF;
    let r2 = (fastrand::u16(..) & 0x3FFF) | 0x8000;
    let r3 = fastrand::u64(..) & 0xFFFF_FFFF_FFFF;
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xFFFF,
        r1,
        r2,
        r3
    )
}

/// Wall-clock Unix time, milliseconds.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A delivery as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Body.
    pub body: Vec<u8>,
    /// Properties.
    pub properties: BasicProperties,
    /// The broker's redelivered flag.
    pub redelivered: bool,
    /// 1 on the first attempt, +1 per broker retry (from the kit's `x-attempts` header).
    pub attempt: u32,
    /// Channel-scoped delivery tag.
    pub delivery_tag: u64,
}

impl Delivery {
    /// The message id, if any.
    pub fn message_id(&self) -> Option<&str> {
        self.properties.message_id().as_ref().map(|s| s.as_str())
    }

    /// A header as a string (long/short strings, integers and booleans are stringified).
    pub fn header(&self, key: &str) -> Option<String> {
        header_str(self.properties.headers().as_ref()?, key)
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A header value as a string; tolerant of the field types other clients use.
pub fn header_str(t: &FieldTable, key: &str) -> Option<String> {
    let v = t.inner().get(&ShortString::from(key))?;
    Some(match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        _ => return None,
    })
}

/// A header value as an unsigned integer.
pub fn header_u64(t: &FieldTable, key: &str) -> Option<u64> {
    header_str(t, key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_shaped_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
    }

    #[test]
    fn defaults_fill_id_and_persistence_but_keep_given_ones() {
        let mut m = Message::new("", "q", "x");
        m.ensure_defaults();
        assert!(m.id().is_some());
        assert_eq!(*m.properties.delivery_mode(), Some(2));
        let mut m = Message::new("", "q", "x").with_id("k1").transient();
        m.ensure_defaults();
        assert_eq!(m.id(), Some("k1"));
        assert_eq!(*m.properties.delivery_mode(), Some(1));
    }
}
