//! Delayed messages: exchanges of type `x-delayed-message`, with the
//! semantics of RabbitMQ's `rabbitmq_delayed_message_exchange` plugin.
//!
//! Such an exchange routes like its `x-delayed-type` (direct, fanout, topic,
//! headers). A message whose `x-delay` header is a delay in
//! `1..=DELAY_MS_MAX` ms is not routed when published: the exchange keeps it
//! and routes it (from itself, following e2e bindings and its alternate
//! exchange) once the delay has passed. At publish time it counts as routed
//! nowhere, exactly as in the plugin: a mandatory publish gets
//! basic.return NO_ROUTE at once (and is still delivered later), and the
//! alternate exchange receives a copy at once. When it fires, `x-delay` is
//! rewritten to minus the delay (a signed 32-bit int, as the plugin does), so
//! it is not delayed again by another delayed exchange downstream; any
//! other header value (absent, 0, negative, too large, not a number) routes
//! at once and keeps the header unchanged.
//!
//! Each delayed exchange holds its messages like a hidden queue: the body
//! is written once into the arena, and the exchange keeps only a due-time
//! ordered heap of (due_ms, seq, location): 24 bytes per pending message.
//! For a durable exchange, persistent messages are also written to the
//! store, held by a hidden durable queue named [`hidden_queue_name`] (a
//! name clients cannot declare: `amq.` is reserved), with the due time in
//! the record, so due times (wall clock) survive restarts. Their confirms
//! wait for the fsync like any durable queue's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};
use bytes::Bytes;

use crate::arena::{Arena, Loc};
use crate::error::AmqpError;
use crate::exchange::ExchangeKind;

/// The exchange type name clients declare.
pub const DELAYED_TYPE: &str = "x-delayed-message";

/// The argument naming the routing type.
pub const DELAYED_TYPE_ARG: &str = "x-delayed-type";

/// Longest delay honoured, in ms (the plugin's Erlang timer limit); a
/// larger `x-delay` routes at once, as in the plugin.
pub const DELAY_MS_MAX: i64 = 4_294_967_295;

/// Most delayed messages routed per tick across all exchanges, so a million
/// due at once do not hold the core lock for long; the rest go next tick.
pub const DELAYED_FIRE_PER_TICK_MAX: usize = 10_000;

/// Prefix of the hidden store queue holding a durable delayed exchange's
/// persistent messages.
pub const HIDDEN_QUEUE_PREFIX: &str = "amq.x-delayed-message.";

/// The hidden store queue name for `exchange`.
pub fn hidden_queue_name(exchange: &str) -> String {
    format!("{HIDDEN_QUEUE_PREFIX}{exchange}")
}

/// The exchange a hidden store queue belongs to, if `queue` is one.
pub fn exchange_of_hidden(queue: &str) -> Option<&str> {
    queue.strip_prefix(HIDDEN_QUEUE_PREFIX)
}

/// Milliseconds since the Unix epoch: due times are wall-clock based so
/// they survive restarts.
/// In the core's own tests a thread that built a `testkit::Core` reads that
/// core's virtual clock instead (as `message::now_ms` does), so delays are
/// tested without sleeping.
pub fn wall_ms() -> u64 {
    #[cfg(test)]
    if let Some(ms) = crate::testkit::test_clock_ms() {
        return ms;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The routing kind of a declared exchange type: `(kind, delayed)`.
/// Errors are the broker's (unknown type) and the plugin's texts.
pub fn declared_kind(
    kind: &str,
    arguments: &FieldTable,
) -> Result<(ExchangeKind, bool), AmqpError> {
    if kind != DELAYED_TYPE {
        return ExchangeKind::parse(kind)
            .map(|k| (k, false))
            .ok_or_else(|| AmqpError::command_invalid(format!("unknown exchange type '{kind}'")));
    }
    let Some(inner) = arguments.get(DELAYED_TYPE_ARG).and_then(|v| v.as_str()) else {
        return Err(AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ));
    };
    match ExchangeKind::parse(inner) {
        Some(k) => Ok((k, true)),
        None => Err(AmqpError::command_invalid(format!(
            "unknown exchange type '{inner}'"
        ))),
    }
}

/// The delay a message asks for, if it is to be delayed: the plugin's
/// reading of `x-delay` (integers; strings parsed as integers; floats
/// truncated), then `1..=DELAY_MS_MAX`.
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let v = headers?.get("x-delay")?;
    let d = match v {
        FieldValue::LongStr(s) => std::str::from_utf8(s).ok()?.trim().parse::<i64>().ok()?,
        FieldValue::F32(f) => *f as i64,
        FieldValue::F64(f) => *f as i64,
        FieldValue::Decimal { scale, value } => {
            (*value as i64) / 10i64.checked_pow(u32::from(*scale)).unwrap_or(i64::MAX)
        }
        other => other.as_i64()?,
    };
    (d > 0 && d <= DELAY_MS_MAX).then_some(d as u64)
}

/// Properties of a delayed message as it will be routed: `x-delay` set to
/// minus the delay (signed 32-bit when it fits, as the plugin writes it).
pub fn fired_properties(raw: &[u8], delay_ms: u64) -> Bytes {
    let mut props = BasicProperties::decode(&Bytes::copy_from_slice(raw)).unwrap_or_default();
    let mut headers = props.headers.take().unwrap_or_default();
    let neg = -(delay_ms as i64);
    let v = i32::try_from(neg).map_or(FieldValue::I64(neg), FieldValue::I32);
    headers.insert(ShortStr::from("x-delay"), v);
    props.headers = Some(headers);
    props.to_bytes()
}

/// One pending message: due time (wall ms), arrival order, arena location.
type Pending = Reverse<(u64, u64, Loc)>;

/// The pending messages of one delayed exchange.
#[derive(Debug, Default)]
pub struct DelayedStore {
    /// Pending messages, earliest due first (ties in arrival order).
    heap: BinaryHeap<Pending>,
    /// Arrival counter for `heap` ties.
    next_seq: u64,
}

impl DelayedStore {
    /// Keeps the message at `loc` until `due_ms`.
    pub fn push(&mut self, due_ms: u64, loc: Loc) {
        self.next_seq += 1;
        self.heap.push(Reverse((due_ms, self.next_seq, loc)));
    }

    /// The next message due at or before `now_ms`, removed.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Loc> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now_ms => {
                self.heap.pop().map(|Reverse((_, _, loc))| loc)
            }
            _ => None,
        }
    }

    /// Due time of the earliest pending message.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops every pending message (the exchange is deleted); returns their
    /// locations so the caller can release them (arena and store).
    pub fn drain(&mut self) -> Vec<Loc> {
        std::mem::take(&mut self.heap)
            .into_iter()
            .map(|Reverse((_, _, loc))| loc)
            .collect()
    }

    /// Releases every pending message from the arena.
    pub fn release_all(&mut self, arena: &mut dyn Arena) {
        for loc in self.drain() {
            arena.release(loc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: FieldValue) -> FieldTable {
        let mut t = FieldTable::new();
        t.insert(ShortStr::from("x-delay"), v);
        t
    }

    #[test]
    fn delay_reading_follows_the_plugin() {
        assert_eq!(delay_of(None), None);
        assert_eq!(delay_of(Some(&FieldTable::new())), None);
        assert_eq!(delay_of(Some(&headers(FieldValue::I32(500)))), Some(500));
        assert_eq!(delay_of(Some(&headers(FieldValue::I64(0)))), None);
        assert_eq!(delay_of(Some(&headers(FieldValue::I32(-5)))), None);
        assert_eq!(delay_of(Some(&headers(FieldValue::U8(7)))), Some(7));
        assert_eq!(
            delay_of(Some(&headers(FieldValue::LongStr(Bytes::from_static(
                b"250"
            ))))),
            Some(250)
        );
        assert_eq!(
            delay_of(Some(&headers(FieldValue::LongStr(Bytes::from_static(
                b"x"
            ))))),
            None
        );
        assert_eq!(delay_of(Some(&headers(FieldValue::F64(12.9)))), Some(12));
        assert_eq!(
            delay_of(Some(&headers(FieldValue::I64(DELAY_MS_MAX + 1)))),
            None
        );
    }

    #[test]
    fn heap_orders_by_due_then_arrival() {
        let mut s = DelayedStore::default();
        s.push(30, 8);
        s.push(10, 16);
        s.push(10, 24);
        s.push(20, 32);
        assert_eq!(s.next_due_ms(), Some(10));
        assert_eq!(s.pop_due(5), None);
        assert_eq!(s.pop_due(25), Some(16));
        assert_eq!(s.pop_due(25), Some(24));
        assert_eq!(s.pop_due(25), Some(32));
        assert_eq!(s.pop_due(25), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.drain(), vec![8]);
        assert!(s.is_empty());
    }

    #[test]
    fn declared_kind_checks_the_delayed_type() {
        let mut args = FieldTable::new();
        assert!(declared_kind(DELAYED_TYPE, &args).is_err());
        args.insert(
            ShortStr::from(DELAYED_TYPE_ARG),
            FieldValue::LongStr(Bytes::from_static(b"topic")),
        );
        assert_eq!(
            declared_kind(DELAYED_TYPE, &args).ok(),
            Some((ExchangeKind::Topic, true))
        );
        assert_eq!(
            declared_kind("fanout", &FieldTable::new()).ok(),
            Some((ExchangeKind::Fanout, false))
        );
    }

    #[test]
    fn fired_properties_negate_the_delay() {
        let p = BasicProperties {
            headers: Some(headers(FieldValue::I32(1500))),
            delivery_mode: Some(2),
            ..Default::default()
        };
        let out = fired_properties(&p.to_bytes(), 1500);
        let back = BasicProperties::decode(&out).unwrap_or_default();
        assert_eq!(back.delivery_mode, Some(2));
        assert_eq!(
            back.headers
                .as_ref()
                .and_then(|h| h.get("x-delay"))
                .cloned(),
            Some(FieldValue::I32(-1500))
        );
    }
}
