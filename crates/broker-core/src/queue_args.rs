//! Queue arguments that change behaviour: length limits, overflow mode,
//! message TTL, dead-lettering, queue expiry, priorities, single active
//! consumer, acknowledgement timeout (RabbitMQ's `x-` args), read from a
//! queue's argument table.
//!
//! Reading never fails: the values were validated once, at declare, by
//! `queue_type::check_new_queue` (the one place with RabbitMQ's rules and
//! texts); a stored table that no longer reads as a valid value leaves that
//! setting unset.

use amqp_codec::{FieldTable, FieldValue, ShortStr};

/// What happens when a queue with a length limit is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest message to make room.
    #[default]
    DropHead,
    /// Refuse the new message (publisher gets basic.nack in confirm mode).
    RejectPublish,
    /// Refuse and dead-letter the new message.
    RejectPublishDlx,
}

/// Parsed behaviour-changing arguments of a queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueLimits {
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub message_ttl_ms: Option<u64>,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    /// Delete the queue after it has been unused this long.
    pub expires_ms: Option<u64>,
    /// `x-max-priority`: highest message priority (a priority queue when >= 1).
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`: only one consumer receives at a time.
    pub single_active_consumer: bool,
    /// `x-consumer-timeout` (RabbitMQ 3.12+): a delivery from this queue
    /// left unacknowledged longer than this closes its channel; replaces
    /// the server's `consumer_timeout_ms` for this queue.
    pub consumer_timeout_ms: Option<u64>,
}

/// A non-negative integer argument.
fn non_negative(args: &FieldTable, key: &str) -> Option<u64> {
    args.get(key)
        .and_then(FieldValue::as_i64)
        .and_then(|n| u64::try_from(n).ok())
}

/// A string argument that fits a short string (names of exchanges, keys).
fn short_string(args: &FieldTable, key: &str) -> Option<ShortStr> {
    args.get(key)
        .and_then(FieldValue::as_str)
        .and_then(|s| ShortStr::try_from_str(s).ok())
}

impl QueueLimits {
    /// Reads the behaviour-changing arguments (see the module doc).
    pub fn from_args(args: &FieldTable) -> QueueLimits {
        let overflow = match args.get("x-overflow").and_then(FieldValue::as_str) {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
        let dead_letter_exchange = short_string(args, "x-dead-letter-exchange");
        QueueLimits {
            max_length: non_negative(args, "x-max-length"),
            max_length_bytes: non_negative(args, "x-max-length-bytes"),
            overflow,
            message_ttl_ms: non_negative(args, "x-message-ttl"),
            dead_letter_routing_key: dead_letter_exchange
                .as_ref()
                .and(short_string(args, "x-dead-letter-routing-key")),
            dead_letter_exchange,
            expires_ms: non_negative(args, "x-expires").filter(|&n| n >= 1),
            max_priority: non_negative(args, "x-max-priority").and_then(|n| u8::try_from(n).ok()),
            single_active_consumer: matches!(
                args.get("x-single-active-consumer"),
                Some(FieldValue::Bool(true))
            ),
            consumer_timeout_ms: non_negative(args, "x-consumer-timeout"),
        }
    }

    pub fn has_length_limit(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }
}

/// Parses a per-message `expiration` property (milliseconds as a decimal
/// string). RabbitMQ rejects anything else with 406 at publish.
pub fn parse_expiration(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid expiration '{s}': {{value_negative_or_not_integer}}"
        ));
    }
    s.parse::<u64>()
        .map_err(|_| format!("invalid expiration '{s}': too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_limits() {
        let mut t = FieldTable::new();
        t.insert("x-max-length".into(), FieldValue::I32(10));
        t.insert(
            "x-overflow".into(),
            FieldValue::LongStr("reject-publish".into()),
        );
        t.insert("x-message-ttl".into(), FieldValue::I64(500));
        t.insert("x-max-priority".into(), FieldValue::U8(9));
        t.insert("x-single-active-consumer".into(), FieldValue::Bool(true));
        t.insert("x-consumer-timeout".into(), FieldValue::I32(1500));
        let l = QueueLimits::from_args(&t);
        assert_eq!(l.max_length, Some(10));
        assert_eq!(l.overflow, Overflow::RejectPublish);
        assert_eq!(l.message_ttl_ms, Some(500));
        assert_eq!(l.max_priority, Some(9));
        assert!(l.single_active_consumer);
        assert_eq!(l.consumer_timeout_ms, Some(1500));
        assert_eq!(
            QueueLimits::from_args(&FieldTable::new()),
            QueueLimits::default()
        );
    }

    #[test]
    fn unreadable_stored_values_leave_the_setting_unset() {
        let mut t = FieldTable::new();
        t.insert("x-max-length".into(), FieldValue::I32(-1));
        t.insert("x-max-priority".into(), FieldValue::I32(256));
        t.insert(
            "x-dead-letter-routing-key".into(),
            FieldValue::LongStr("k".into()),
        );
        let l = QueueLimits::from_args(&t);
        assert_eq!(l.max_length, None);
        assert_eq!(l.max_priority, None);
        // A routing key without an exchange means nothing.
        assert_eq!(l.dead_letter_routing_key, None);
    }

    #[test]
    fn expiration_strings() {
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("1500"), Ok(1500));
        assert!(parse_expiration("-1").is_err());
        assert!(parse_expiration("1.5").is_err());
    }
}
