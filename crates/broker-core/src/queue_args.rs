//! Queue arguments that change behaviour: length limits, overflow mode,
//! message TTL, dead-lettering and queue expiry (RabbitMQ's `x-` args).

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

fn non_negative(args: &FieldTable, key: &str, min: i64) -> Result<Option<u64>, String> {
    match args.get(key) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= min => Ok(Some(n as u64)),
            Some(n) => Err(format!(
                "invalid arg '{key}': {{value_too_small,{n},{min}}}"
            )),
            None => Err(format!(
                "invalid arg '{key}': {{unacceptable_type,{}}}",
                type_name(v)
            )),
        },
    }
}

fn string_arg(args: &FieldTable, key: &str) -> Result<Option<ShortStr>, String> {
    match args.get(key) {
        None => Ok(None),
        Some(v) => match v.as_str() {
            Some(s) => ShortStr::try_from_str(s)
                .map(Some)
                .map_err(|_| format!("invalid arg '{key}': too long")),
            None => Err(format!(
                "invalid arg '{key}': {{unacceptable_type,{}}}",
                type_name(v)
            )),
        },
    }
}

/// RabbitMQ's name for a field's AMQP type, as its error texts print it.
pub(crate) fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Bool(_) => "bool",
        FieldValue::Table(_) => "table",
        FieldValue::Array(_) => "array",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Void => "void",
        FieldValue::ByteArray(_) => "binary",
    }
}

/// `x-max-priority` as RabbitMQ 3.10 validates it (`check_max_priority_arg`):
/// an integer type, 0..=255 (0 means one lane, i.e. FIFO).
fn max_priority_arg(args: &FieldTable) -> Result<Option<u8>, String> {
    const KEY: &str = "x-max-priority";
    let Some(v) = args.get(KEY) else {
        return Ok(None);
    };
    let n = match v {
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_) => v.as_i64().unwrap_or(0),
        _ => {
            return Err(format!(
                "invalid arg '{KEY}': \"expected integer, got {}\"",
                type_name(v)
            ))
        }
    };
    if n < 0 {
        return Err(format!("invalid arg '{KEY}': {{value_negative,{n}}}"));
    }
    u8::try_from(n)
        .map(Some)
        .map_err(|_| format!("invalid arg '{KEY}': {{max_value_exceeded,{n}}}"))
}

/// `x-single-active-consumer`: a bool (RabbitMQ's check_bool_arg).
fn bool_arg(args: &FieldTable, key: &str) -> Result<bool, String> {
    match args.get(key) {
        None => Ok(false),
        Some(FieldValue::Bool(b)) => Ok(*b),
        Some(v) => Err(format!(
            "invalid arg '{key}': {{unacceptable_type,{}}}",
            type_name(v)
        )),
    }
}

/// `x-consumer-timeout`: validated as RabbitMQ (4.x) does at declare, with
/// its check_non_neg_int_arg (3.12 read it without validating it).
fn consumer_timeout_arg(args: &FieldTable) -> Result<Option<u64>, String> {
    let key = "x-consumer-timeout";
    match args.get(key) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            Some(n) => Err(format!("invalid arg '{key}': {{value_negative,{n}}}")),
            None => Err(format!(
                "invalid arg '{key}': \"expected integer, got {}\"",
                type_name(v)
            )),
        },
    }
}

impl QueueLimits {
    /// Parses and validates; `Err` carries the detail of a 406 reply.
    pub fn parse(args: &FieldTable) -> Result<QueueLimits, String> {
        let overflow = match args.get("x-overflow") {
            None => Overflow::DropHead,
            Some(v) => match v.as_str() {
                Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => return Err(format!("invalid arg 'x-overflow': {v:?}")),
            },
        };
        let dlrk = string_arg(args, "x-dead-letter-routing-key")?;
        let dlx = string_arg(args, "x-dead-letter-exchange")?;
        if dlrk.is_some() && dlx.is_none() {
            return Err("invalid arg 'x-dead-letter-routing-key': Key 'x-dead-letter-exchange' is mandatory if 'x-dead-letter-routing-key' is set".into());
        }
        Ok(QueueLimits {
            max_length: non_negative(args, "x-max-length", 0)?,
            max_length_bytes: non_negative(args, "x-max-length-bytes", 0)?,
            overflow,
            message_ttl_ms: non_negative(args, "x-message-ttl", 0)?,
            dead_letter_exchange: dlx,
            dead_letter_routing_key: dlrk,
            expires_ms: non_negative(args, "x-expires", 1)?,
            max_priority: max_priority_arg(args)?,
            single_active_consumer: bool_arg(args, "x-single-active-consumer")?,
            consumer_timeout_ms: consumer_timeout_arg(args)?,
        })
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
    fn parses_limits() {
        let mut t = FieldTable::new();
        t.insert("x-max-length".into(), FieldValue::I32(10));
        t.insert(
            "x-overflow".into(),
            FieldValue::LongStr("reject-publish".into()),
        );
        t.insert("x-message-ttl".into(), FieldValue::I64(500));
        let l = QueueLimits::parse(&t).unwrap();
        assert_eq!(l.max_length, Some(10));
        assert_eq!(l.overflow, Overflow::RejectPublish);
        assert_eq!(l.message_ttl_ms, Some(500));
        t.insert("x-max-length".into(), FieldValue::I32(-1));
        assert!(QueueLimits::parse(&t).is_err());
    }

    #[test]
    fn max_priority_validated_like_rabbitmq() {
        let parse = |v: FieldValue| {
            let mut t = FieldTable::new();
            t.insert("x-max-priority".into(), v);
            QueueLimits::parse(&t).map(|l| l.max_priority)
        };
        assert_eq!(parse(FieldValue::I32(10)), Ok(Some(10)));
        assert_eq!(parse(FieldValue::U8(0)), Ok(Some(0)));
        assert_eq!(parse(FieldValue::I64(255)), Ok(Some(255)));
        assert_eq!(
            parse(FieldValue::I32(256)),
            Err("invalid arg 'x-max-priority': {max_value_exceeded,256}".into())
        );
        assert_eq!(
            parse(FieldValue::I16(-1)),
            Err("invalid arg 'x-max-priority': {value_negative,-1}".into())
        );
        assert_eq!(
            parse(FieldValue::LongStr("5".into())),
            Err("invalid arg 'x-max-priority': \"expected integer, got longstr\"".into())
        );
        assert_eq!(
            parse(FieldValue::Bool(true)),
            Err("invalid arg 'x-max-priority': \"expected integer, got bool\"".into())
        );
        assert_eq!(
            QueueLimits::parse(&FieldTable::new()).map(|l| l.max_priority),
            Ok(None)
        );
    }

    #[test]
    fn single_active_and_consumer_timeout() {
        let mut t = FieldTable::new();
        t.insert("x-single-active-consumer".into(), FieldValue::Bool(true));
        t.insert("x-consumer-timeout".into(), FieldValue::I32(1500));
        let l = QueueLimits::parse(&t).unwrap();
        assert!(l.single_active_consumer);
        assert_eq!(l.consumer_timeout_ms, Some(1500));
        t.insert("x-single-active-consumer".into(), FieldValue::I32(1));
        assert_eq!(
            QueueLimits::parse(&t).unwrap_err(),
            "invalid arg 'x-single-active-consumer': {unacceptable_type,signedint}"
        );
        t.remove("x-single-active-consumer");
        t.insert("x-consumer-timeout".into(), FieldValue::I64(-1));
        assert_eq!(
            QueueLimits::parse(&t).unwrap_err(),
            "invalid arg 'x-consumer-timeout': {value_negative,-1}"
        );
        t.insert("x-consumer-timeout".into(), FieldValue::LongStr("1".into()));
        assert_eq!(
            QueueLimits::parse(&t).unwrap_err(),
            "invalid arg 'x-consumer-timeout': \"expected integer, got longstr\""
        );
    }

    #[test]
    fn expiration_strings() {
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("1500"), Ok(1500));
        assert!(parse_expiration("-1").is_err());
        assert!(parse_expiration("1.5").is_err());
    }
}
