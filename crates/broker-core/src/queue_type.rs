//! Queue types (`x-queue-type`) as RabbitMQ 3.10 treats them on
//! queue.declare: which arguments each type accepts, the checks of argument
//! values (with RabbitMQ's texts, in its order), the properties a quorum
//! queue must have, and argument equivalence on redeclare.
//!
//! warren has classic and quorum queues. `stream` (which RabbitMQ knows) is
//! refused with the 406 RabbitMQ gives for a queue type it does not support:
//! `invalid arg 'x-queue-type' for queue 'q' in vhost '/': "unsupported queue type 'stream'"`.

use amqp_codec::{FieldTable, FieldValue};

use crate::error::AmqpError;

/// The kind of a queue, fixed when it is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// The default: RabbitMQ's `rabbit_classic_queue`.
    #[default]
    Classic,
    /// RabbitMQ's `rabbit_quorum_queue`: durable only, delivery counting,
    /// every message stored.
    Quorum,
}

/// `queue_arguments` of `rabbit_classic_queue:capabilities()` (3.10).
const CLASSIC_ARGS: [&str; 14] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
    "x-consumer-timeout",
];

/// `queue_arguments` of `rabbit_quorum_queue:capabilities()` (3.10).
const QUORUM_ARGS: [&str; 16] = [
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
    "x-queue-leader-locator",
    "x-consumer-timeout",
];

/// `queue_arguments` of `rabbit_stream_queue:capabilities()` (3.10): not a
/// type warren has, but RabbitMQ refuses these on the other types.
const STREAM_ARGS: [&str; 6] = [
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// How one argument's value is checked (RabbitMQ's `declare_args()`).
#[derive(Clone, Copy)]
enum Check {
    Expires,
    MessageTtl,
    DlxName,
    DlxRoutingKey,
    DlxStrategy,
    NonNegInt,
    MaxPriority,
    Overflow,
    QueueMode,
    QueueVersion,
    Bool,
    QueueType,
    InitialGroupSize,
    LeaderLocator,
}

/// Value checks in RabbitMQ 3.10's `declare_args()` order; a queue runs
/// those of its type's arguments. (The stream-only ones are left out: no
/// declared type accepts them.)
const CHECKS: [(&str, Check); 18] = [
    ("x-expires", Check::Expires),
    ("x-message-ttl", Check::MessageTtl),
    ("x-dead-letter-exchange", Check::DlxName),
    ("x-dead-letter-routing-key", Check::DlxRoutingKey),
    ("x-dead-letter-strategy", Check::DlxStrategy),
    ("x-max-length", Check::NonNegInt),
    ("x-max-length-bytes", Check::NonNegInt),
    ("x-max-in-memory-length", Check::NonNegInt),
    ("x-max-in-memory-bytes", Check::NonNegInt),
    ("x-max-priority", Check::MaxPriority),
    ("x-overflow", Check::Overflow),
    ("x-queue-mode", Check::QueueMode),
    ("x-queue-version", Check::QueueVersion),
    ("x-single-active-consumer", Check::Bool),
    ("x-queue-type", Check::QueueType),
    ("x-quorum-initial-group-size", Check::InitialGroupSize),
    ("x-queue-leader-locator", Check::LeaderLocator),
    // RabbitMQ 3.12+ (check_non_neg_int_arg in later versions).
    ("x-consumer-timeout", Check::NonNegInt),
];

/// Longest TTL or expiry RabbitMQ accepts: 10 years in milliseconds.
const EXPIRY_MS_MAX: i64 = 315_360_000_000;
/// Highest `x-max-priority` RabbitMQ accepts.
const PRIORITY_MAX: i64 = 255;

impl QueueType {
    /// The type a (validated or stored) argument table names; anything but
    /// `quorum` is classic.
    pub fn of(args: &FieldTable) -> QueueType {
        match args.get("x-queue-type").and_then(|v| v.as_str()) {
            Some("quorum") => QueueType::Quorum,
            _ => QueueType::Classic,
        }
    }

    pub fn is_quorum(self) -> bool {
        self == QueueType::Quorum
    }

    /// RabbitMQ's module name, as its error texts show it.
    pub fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
        }
    }

    /// The arguments this type accepts, which are also the ones compared
    /// for equivalence on redeclare.
    pub fn arguments(self) -> &'static [&'static str] {
        match self {
            QueueType::Classic => &CLASSIC_ARGS,
            QueueType::Quorum => &QUORUM_ARGS,
        }
    }
}

/// RabbitMQ's name of a field type (`rabbit_binary_parser`), as shown in
/// `{unacceptable_type,signedint}` and `of type 'longstr'`.
pub fn rabbit_type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::ByteArray(_) => "binary",
    }
}

/// An integer argument (any integer field type), or RabbitMQ's error term.
fn int_arg(v: &FieldValue) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("\"expected integer, got {}\"", rabbit_type_name(v)))
}

fn non_neg_int(v: &FieldValue) -> Result<i64, String> {
    let n = int_arg(v)?;
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    Ok(n)
}

fn expiry(n: i64) -> Result<(), String> {
    if n < 0 {
        Err(format!("{{value_negative,{n}}}"))
    } else if n > EXPIRY_MS_MAX {
        Err(format!("{{value_too_large,{n}}}"))
    } else {
        Ok(())
    }
}

/// A string argument that must be one of `known`; `bad` is the error term
/// for an unknown value (given the value).
fn one_of(v: &FieldValue, known: &[&str], bad: impl Fn(&str) -> String) -> Result<(), String> {
    match v {
        FieldValue::LongStr(b) => {
            let s = String::from_utf8_lossy(b);
            if known.contains(&s.as_ref()) {
                Ok(())
            } else {
                Err(bad(&s))
            }
        }
        other => Err(format!("{{unacceptable_type,{}}}", rabbit_type_name(other))),
    }
}

/// Queue types warren can declare.
const QUEUE_TYPES_SUPPORTED: [&str; 2] = ["classic", "quorum"];

fn check_value(check: Check, v: &FieldValue, args: &FieldTable) -> Result<(), String> {
    match check {
        Check::Expires => {
            let n = int_arg(v)?;
            if n == 0 {
                return Err("{value_zero,0}".into());
            }
            expiry(n)
        }
        Check::MessageTtl => expiry(int_arg(v)?),
        Check::DlxName => match v {
            // Exchange names are short strings.
            FieldValue::LongStr(b) if b.len() > 255 => Err("{name_too_long,255}".into()),
            FieldValue::LongStr(_) => Ok(()),
            other => Err(format!("{{unacceptable_type,{}}}", rabbit_type_name(other))),
        },
        Check::DlxRoutingKey => match v {
            FieldValue::LongStr(_) if args.get("x-dead-letter-exchange").is_none() => {
                Err("routing_key_but_no_dlx_defined".into())
            }
            FieldValue::LongStr(_) => Ok(()),
            other => Err(format!("{{unacceptable_type,{}}}", rabbit_type_name(other))),
        },
        Check::DlxStrategy => one_of(v, &["at-most-once", "at-least-once"], |_| {
            "invalid_dlx_strategy".into()
        }),
        Check::NonNegInt => non_neg_int(v).map(|_| ()),
        Check::MaxPriority => {
            let n = non_neg_int(v)?;
            if n > PRIORITY_MAX {
                return Err(format!("{{max_value_exceeded,{n}}}"));
            }
            Ok(())
        }
        Check::Overflow => one_of(
            v,
            &["drop-head", "reject-publish", "reject-publish-dlx"],
            |_| "invalid_overflow".into(),
        ),
        Check::QueueMode => one_of(v, &["default", "lazy"], |s| {
            format!("\"unsupported queue mode '{s}'\"")
        }),
        Check::QueueVersion => {
            let n = non_neg_int(v)?;
            if n == 1 || n == 2 {
                Ok(())
            } else {
                Err(format!("\"unsupported queue version '{n}'\""))
            }
        }
        Check::Bool => match v {
            FieldValue::Bool(_) => Ok(()),
            other => Err(format!("{{unacceptable_type,{}}}", rabbit_type_name(other))),
        },
        Check::QueueType => one_of(v, &QUEUE_TYPES_SUPPORTED, |s| {
            format!("\"unsupported queue type '{s}'\"")
        }),
        Check::InitialGroupSize => {
            if non_neg_int(v)? == 0 {
                return Err("{value_zero,0}".into());
            }
            Ok(())
        }
        Check::LeaderLocator => one_of(
            v,
            &["client-local", "balanced", "random", "least-leaders"],
            |_| "invalid_queue_locator_arg".into(),
        ),
    }
}

fn invalid_arg(key: &str, name: &str, vhost: &str, detail: &str) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "invalid arg '{key}' for queue '{name}' in vhost '{vhost}': {detail}"
    ))
}

/// The declared properties of a new queue.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// queue.declare's `durable` bit.
    pub durable: bool,
    /// queue.declare's `exclusive` bit.
    pub exclusive: bool,
    /// queue.declare's `auto-delete` bit.
    pub auto_delete: bool,
}

/// Checks the arguments and properties of a queue about to be created, in
/// RabbitMQ 3.10's order: the dead-letter exchange's type (checked by the
/// channel), `x-queue-type`, the values of the type's arguments, arguments
/// another type owns (in the client's table order), then the quorum
/// queue's properties. Returns the queue's type.
pub fn check_new_queue(
    name: &str,
    vhost: &str,
    args: &FieldTable,
    declared: Declared,
) -> Result<QueueType, AmqpError> {
    if let Some(v) = args.get("x-dead-letter-exchange") {
        if !matches!(v, FieldValue::LongStr(_)) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{name}' in vhost '{vhost}'",
                rabbit_type_name(v)
            )));
        }
    }
    if let Some(v) = args.get("x-queue-type") {
        check_value(Check::QueueType, v, args)
            .map_err(|d| invalid_arg("x-queue-type", name, vhost, &d))?;
    }
    let kind = QueueType::of(args);
    let own = kind.arguments();
    // No arguments, nothing to check but the properties (the loops below
    // compare every known argument name against the type's list).
    let checks: &[(&str, Check)] = if args.is_empty() { &[] } else { &CHECKS };
    for &(key, check) in checks {
        if !own.contains(&key) {
            continue;
        }
        if let Some(v) = args.get(key) {
            check_value(check, v, args).map_err(|d| invalid_arg(key, name, vhost, &d))?;
        }
    }
    for (key, _) in args.iter() {
        let key = key.as_str();
        let known_elsewhere =
            CLASSIC_ARGS.contains(&key) || QUORUM_ARGS.contains(&key) || STREAM_ARGS.contains(&key);
        if known_elsewhere && !own.contains(&key) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for queue '{name}' in vhost '{vhost}' of queue type {}",
                kind.module()
            )));
        }
    }
    if kind.is_quorum() {
        let property = if declared.auto_delete {
            Some("auto-delete")
        } else if declared.exclusive {
            Some("exclusive-owner")
        } else if !declared.durable {
            Some("non-durable")
        } else {
            None
        };
        if let Some(p) = property {
            return Err(AmqpError::precondition_failed(format!(
                "invalid property '{p}' for queue '{name}' in vhost '{vhost}'"
            )));
        }
    }
    Ok(kind)
}

/// The refusal of a server-named queue of a type that needs a name.
pub fn server_named_refused(kind: QueueType) -> Option<AmqpError> {
    kind.is_quorum().then(|| {
        AmqpError::precondition_failed(format!(
            "Cannot declare a server-named queue for type {}",
            kind.module()
        ))
    })
}

/// How RabbitMQ prints an argument value in equivalence errors:
/// `typed` adds the type (`the value '5' of type 'signedint'`), as it does
/// when the other side has no value.
fn show_value(v: Option<&FieldValue>, typed: bool) -> String {
    let Some(v) = v else {
        return "none".into();
    };
    let shown = match v {
        FieldValue::LongStr(b) => String::from_utf8_lossy(b).into_owned(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Timestamp(t) => t.to_string(),
        FieldValue::Void => "undefined".into(),
        other => match other.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{other:?}"),
        },
    };
    if typed {
        format!("the value '{shown}' of type '{}'", rabbit_type_name(v))
    } else {
        format!("'{shown}'")
    }
}

/// Compares declared arguments with existing ones as RabbitMQ's
/// `assert_args_equivalence` does: integers of any width are one class, a
/// missing `x-queue-type` equals `classic`.
pub fn check_equivalence(
    keys: &[&str],
    what: &str,
    name: &str,
    vhost: &str,
    new: &FieldTable,
    cur: &FieldTable,
) -> Result<(), AmqpError> {
    for k in keys {
        let (n, c) = (new.get(k), cur.get(k));
        let same = match (n, c) {
            (Some(a), Some(b)) => a == b || (a.as_i64().is_some() && a.as_i64() == b.as_i64()),
            (None, None) => true,
            (Some(v), None) | (None, Some(v)) => {
                *k == "x-queue-type" && v.as_str() == Some("classic")
            }
        };
        if !same {
            let typed = n.is_none() || c.is_none();
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{k}' for {what} '{name}' in vhost '{vhost}': received {} but current is {}",
                show_value(n, typed),
                show_value(c, typed)
            )));
        }
    }
    Ok(())
}

/// A quorum queue's `x-delivery-limit`. RabbitMQ 3.10 takes the argument
/// whatever its type; only an integer limit ever dead-letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryLimit {
    /// No `x-delivery-limit`.
    #[default]
    Unset,
    /// Present but not an integer: set (which changes where returned
    /// messages go) but never reached.
    NotInteger,
    /// A message delivered more than this many times is dead-lettered.
    Limit(i64),
}

impl DeliveryLimit {
    pub fn parse(args: &FieldTable) -> DeliveryLimit {
        match args.get("x-delivery-limit") {
            None => DeliveryLimit::Unset,
            Some(v) => v
                .as_i64()
                .map_or(DeliveryLimit::NotInteger, DeliveryLimit::Limit),
        }
    }

    pub fn is_set(self) -> bool {
        self != DeliveryLimit::Unset
    }

    /// True when a message returned `count` times has passed the limit.
    pub fn exceeded(self, count: u32) -> bool {
        matches!(self, DeliveryLimit::Limit(l) if i64::from(count) > l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }
    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(bytes::Bytes::copy_from_slice(v.as_bytes()))
    }
    const DURABLE: Declared = Declared {
        durable: true,
        exclusive: false,
        auto_delete: false,
    };
    fn detail(e: &AmqpError) -> String {
        e.text
            .split_once(" - ")
            .map_or(e.text.clone(), |(_, d)| d.to_string())
    }
    fn text(r: Result<QueueType, AmqpError>) -> String {
        match r {
            Err(e) => format!("{} {}", e.code, detail(&e)),
            Ok(k) => format!("ok {k:?}"),
        }
    }

    #[test]
    fn types_and_unsupported_values() {
        let q = |t: FieldValue| {
            text(check_new_queue(
                "q",
                "/",
                &table(&[("x-queue-type", t)]),
                DURABLE,
            ))
        };
        assert_eq!(q(s("classic")), "ok Classic");
        assert_eq!(q(s("quorum")), "ok Quorum");
        assert_eq!(
            q(s("stream")),
            "406 invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'stream'\""
        );
        assert_eq!(
            q(s("Quorum")),
            "406 invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'Quorum'\""
        );
        assert_eq!(
            q(FieldValue::I32(5)),
            "406 invalid arg 'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,signedint}"
        );
        let none = check_new_queue("q", "/", &FieldTable::new(), DURABLE);
        assert_eq!(text(none), "ok Classic");
    }

    #[test]
    fn quorum_properties_in_rabbitmq_order() {
        let args = table(&[("x-queue-type", s("quorum"))]);
        let with = |durable, exclusive, auto_delete| {
            text(check_new_queue(
                "q",
                "/",
                &args,
                Declared {
                    durable,
                    exclusive,
                    auto_delete,
                },
            ))
        };
        assert_eq!(
            with(false, false, false),
            "406 invalid property 'non-durable' for queue 'q' in vhost '/'"
        );
        assert_eq!(
            with(false, true, false),
            "406 invalid property 'exclusive-owner' for queue 'q' in vhost '/'"
        );
        assert_eq!(
            with(false, true, true),
            "406 invalid property 'auto-delete' for queue 'q' in vhost '/'"
        );
        assert_eq!(with(true, false, false), "ok Quorum");
    }

    #[test]
    fn arguments_of_another_type() {
        let q =
            |pairs: &[(&str, FieldValue)]| text(check_new_queue("q", "/", &table(pairs), DURABLE));
        assert_eq!(
            q(&[("x-queue-type", s("quorum")), ("x-queue-mode", s("lazy")), ("x-max-priority", FieldValue::I32(3))]),
            "406 invalid arg 'x-queue-mode' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue"
        );
        assert_eq!(
            q(&[("x-delivery-limit", FieldValue::I32(3))]),
            "406 invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
        );
        assert_eq!(
            q(&[("x-max-age", s("1D"))]),
            "406 invalid arg 'x-max-age' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
        );
        // A bad value is reported before a foreign argument.
        assert_eq!(
            q(&[
                ("x-queue-type", s("quorum")),
                ("x-max-priority", FieldValue::I32(3)),
                ("x-max-length", FieldValue::I32(-1))
            ]),
            "406 invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        // Unknown arguments and any x-delivery-limit value are accepted.
        assert_eq!(
            q(&[
                ("x-queue-type", s("quorum")),
                ("x-delivery-limit", s("a")),
                ("x-foo", FieldValue::I32(1))
            ]),
            "ok Quorum"
        );
    }

    #[test]
    fn argument_values() {
        let q = |k: &str, v: FieldValue| {
            text(check_new_queue(
                "q",
                "/",
                &table(&[("x-queue-type", s("quorum")), (k, v)]),
                DURABLE,
            ))
        };
        assert_eq!(q("x-max-in-memory-length", s("a")), "406 invalid arg 'x-max-in-memory-length' for queue 'q' in vhost '/': \"expected integer, got longstr\"");
        assert_eq!(q("x-quorum-initial-group-size", FieldValue::I32(0)), "406 invalid arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': {value_zero,0}");
        assert_eq!(q("x-dead-letter-strategy", s("foo")), "406 invalid arg 'x-dead-letter-strategy' for queue 'q' in vhost '/': invalid_dlx_strategy");
        assert_eq!(q("x-queue-leader-locator", FieldValue::I32(1)), "406 invalid arg 'x-queue-leader-locator' for queue 'q' in vhost '/': {unacceptable_type,signedint}");
        assert_eq!(q("x-queue-leader-locator", s("balanced")), "ok Quorum");
        assert_eq!(q("x-overflow", s("reject-publish-dlx")), "ok Quorum");
        assert_eq!(q("x-dead-letter-exchange", FieldValue::I32(1)), "406 invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'");
    }

    #[test]
    fn server_named_quorum_refused() {
        assert!(server_named_refused(QueueType::Classic).is_none());
        let e = server_named_refused(QueueType::Quorum).map(|e| detail(&e));
        assert_eq!(
            e.as_deref(),
            Some("Cannot declare a server-named queue for type rabbit_quorum_queue")
        );
    }

    #[test]
    fn equivalence_texts() {
        let eq = |new: &[(&str, FieldValue)], cur: &[(&str, FieldValue)]| {
            check_equivalence(&QUORUM_ARGS, "queue", "q", "/", &table(new), &table(cur))
                .map_err(|e| detail(&e))
        };
        let quorum = [("x-queue-type", s("quorum"))];
        assert_eq!(eq(&quorum, &quorum), Ok(()));
        assert_eq!(
            eq(&[], &quorum),
            Err("inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received none but current is the value 'quorum' of type 'longstr'".into())
        );
        assert_eq!(
            eq(&[("x-queue-type", s("classic"))], &quorum),
            Err("inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'".into())
        );
        assert_eq!(
            eq(&[("x-queue-type", s("classic"))], &[]),
            Ok(()),
            "a missing x-queue-type is classic"
        );
        assert_eq!(
            eq(
                &[("x-delivery-limit", FieldValue::I64(5))],
                &[("x-delivery-limit", FieldValue::I32(5))]
            ),
            Ok(())
        );
        assert_eq!(
            eq(&[("x-delivery-limit", s("5"))], &[("x-delivery-limit", FieldValue::I32(5))]),
            Err("inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '5' but current is '5'".into())
        );
        assert_eq!(
            eq(&[("x-max-length", FieldValue::I32(4))], &[]),
            Err("inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received the value '4' of type 'signedint' but current is none".into())
        );
    }

    #[test]
    fn delivery_limit() {
        let l = |v: FieldValue| DeliveryLimit::parse(&table(&[("x-delivery-limit", v)]));
        assert_eq!(
            DeliveryLimit::parse(&FieldTable::new()),
            DeliveryLimit::Unset
        );
        assert!(!DeliveryLimit::Unset.exceeded(u32::MAX));
        assert!(l(FieldValue::I32(2)).exceeded(3) && !l(FieldValue::I32(2)).exceeded(2));
        assert!(l(FieldValue::I32(0)).exceeded(1));
        assert!(l(FieldValue::I32(-1)).exceeded(1));
        assert!(l(s("a")).is_set() && !l(s("a")).exceeded(1000));
    }

    #[test]
    fn value_checks_of_classic_arguments_use_rabbitmq_texts() {
        let declared = Declared {
            durable: false,
            exclusive: false,
            auto_delete: false,
        };
        let refused = |k: &str, v: FieldValue| {
            check_new_queue("q", "/", &table(&[(k, v)]), declared)
                .map(|_| ())
                .map_err(|e| e.text)
        };
        let text = |k: &str, d: &str| {
            Err(format!(
                "PRECONDITION_FAILED - invalid arg '{k}' for queue 'q' in vhost '/': {d}"
            ))
        };
        assert_eq!(refused("x-max-priority", FieldValue::I32(255)), Ok(()));
        assert_eq!(
            refused("x-max-priority", FieldValue::I32(256)),
            text("x-max-priority", "{max_value_exceeded,256}")
        );
        assert_eq!(
            refused("x-max-priority", FieldValue::I16(-1)),
            text("x-max-priority", "{value_negative,-1}")
        );
        assert_eq!(
            refused("x-max-priority", s("5")),
            text("x-max-priority", "\"expected integer, got longstr\"")
        );
        assert_eq!(
            refused("x-single-active-consumer", FieldValue::I32(1)),
            text("x-single-active-consumer", "{unacceptable_type,signedint}")
        );
        assert_eq!(
            refused("x-consumer-timeout", FieldValue::I64(-1)),
            text("x-consumer-timeout", "{value_negative,-1}")
        );
        assert_eq!(
            refused("x-consumer-timeout", s("1")),
            text("x-consumer-timeout", "\"expected integer, got longstr\"")
        );
        assert_eq!(
            refused("x-max-length", FieldValue::I32(-1)),
            text("x-max-length", "{value_negative,-1}")
        );
    }
}
