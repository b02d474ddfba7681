//! Message deduplication (`x-message-deduplication`, LavinMQ's arguments)
//! on queues and exchanges: duplicates within the window are dropped (and
//! still confirmed with an ack), the window ends after `x-cache-ttl` on the
//! test clock (a message's own `x-cache-ttl` overrides it) or when the key
//! is evicted by `x-cache-size`; messages without the header are never
//! duplicates (message-id is no fallback).

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{Core, Out, Wire};

fn keyed(header: &str, key: &str) -> BasicProperties {
    BasicProperties {
        headers: Some(table(&[(header, long_str(key))])),
        ..Default::default()
    }
}

fn dedup_args(extra: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = table(extra);
    t.insert(
        ShortStr::from("x-message-deduplication"),
        FieldValue::Bool(true),
    );
    t
}

/// Publishes (body, key) pairs to the default exchange, key in the
/// default header.
fn publish_keys(core: &mut Core, c: &Client, q: &str, msgs: &[(&str, &str)]) {
    let mut w = Wire::new();
    for (b, k) in msgs {
        w = w.publish(1, "", q, &keyed("x-deduplication-header", k), b.as_bytes());
    }
    core.input(c, w);
}

#[test]
fn queue_drops_duplicates_and_still_acks_them() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", dedup_args(&[]));
    assert_eq!(
        core.call(&mut c, 1, Method::ConfirmSelect(Default::default()))
            .len(),
        1
    );
    publish_keys(
        &mut core,
        &c,
        "q",
        &[("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a")],
    );
    let got = c.recv();
    let mut acked = Vec::new();
    for o in &got {
        match o.method() {
            Method::BasicAck(a) if a.multiple => {
                acked.extend(acked.len() as u64 + 1..=a.delivery_tag)
            }
            Method::BasicAck(a) => acked.push(a.delivery_tag),
            m => panic!("{m:?}"),
        }
    }
    assert_eq!(acked, vec![1, 2, 3, 4], "duplicates are confirmed too");
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["a1", "b1"]);
    // Consumed does not mean forgotten: still a duplicate.
    publish_keys(&mut core, &c, "q", &[("a4", "a")]);
    assert_eq!(core.queue_depth("q"), Some(0));
}

#[test]
fn messages_without_the_header_are_never_duplicates() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", dedup_args(&[]));
    let with_id = BasicProperties {
        message_id: Some(ShortStr::from("same")),
        ..Default::default()
    };
    let w = Wire::new()
        .publish(1, "", "q", &with_id, b"1")
        .publish(1, "", "q", &with_id, b"2")
        .publish(1, "", "q", &BasicProperties::default(), b"3")
        .publish(1, "", "q", &BasicProperties::default(), b"4");
    core.input(&c, w);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["1", "2", "3", "4"]);
}

#[test]
fn custom_header_and_typed_keys() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        dedup_args(&[("x-deduplication-header", long_str("id"))]),
    );
    let int_key = |v: i32| BasicProperties {
        headers: Some(table(&[("id", FieldValue::I32(v))])),
        ..Default::default()
    };
    let w = Wire::new()
        .publish(1, "", "q", &keyed("id", "1"), b"s1")
        .publish(1, "", "q", &int_key(1), b"i1")
        .publish(1, "", "q", &int_key(1), b"i1-dup")
        .publish(1, "", "q", &keyed("x-deduplication-header", "1"), b"other")
        .publish(1, "", "q", &keyed("id", "1"), b"s1-dup");
    core.input(&c, w);
    // A string "1" and an int 1 are different keys; the default header is
    // not looked at when another is configured.
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["s1", "i1", "other"]);
}

#[test]
fn the_window_ends_after_the_cache_ttl_on_the_test_clock() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        dedup_args(&[("x-cache-ttl", FieldValue::I32(1_000))]),
    );
    publish_keys(&mut core, &c, "q", &[("a1", "a")]);
    core.advance_ms(999);
    publish_keys(&mut core, &c, "q", &[("a2", "a")]);
    core.advance_ms(1);
    publish_keys(&mut core, &c, "q", &[("a3", "a")]);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["a1", "a3"]);
    // A message's own x-cache-ttl overrides the queue's.
    let mut short = keyed("x-deduplication-header", "b");
    if let Some(h) = short.headers.as_mut() {
        h.insert(ShortStr::from("x-cache-ttl"), FieldValue::I32(10));
    }
    core.input(&c, Wire::new().publish(1, "", "q", &short, b"b1"));
    core.advance_ms(10);
    publish_keys(&mut core, &c, "q", &[("b2", "b")]);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["b1", "b2"]);
}

#[test]
fn the_cache_size_evicts_the_oldest_key() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        dedup_args(&[("x-cache-size", FieldValue::I32(2))]),
    );
    publish_keys(
        &mut core,
        &c,
        "q",
        &[
            ("a1", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"), // evicts a
            ("a2", "a"), // evicts b
            ("c2", "c"),
            ("b3", "b"),
        ],
    );
    assert_eq!(
        drain(&mut core, &mut c, "q"),
        vec!["a1", "b1", "c1", "a2", "b3"]
    );
}

#[test]
fn exchange_deduplicates_before_routing() {
    let (mut core, mut c) = setup();
    let got = core.call(
        &mut c,
        1,
        Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
            exchange: ShortStr::from("dx"),
            kind: ShortStr::from("fanout"),
            arguments: dedup_args(&[]),
            ..Default::default()
        }),
    );
    assert_eq!(got.len(), 1, "{got:?}");
    core.declare_queue(&mut c, 1, "q1", FieldTable::new());
    core.declare_queue(&mut c, 1, "q2", FieldTable::new());
    bind(&mut core, &mut c, "q1", "dx", "", FieldTable::new());
    bind(&mut core, &mut c, "q2", "dx", "", FieldTable::new());
    let p = keyed("x-deduplication-header", "k");
    let w = Wire::new()
        .publish(1, "dx", "", &p, b"1")
        .publish_mandatory(1, "dx", "", &p, b"2");
    core.input(&c, w);
    // The duplicate is routed nowhere (warren's reading of LavinMQ: it
    // counts as unroutable), so with mandatory it is returned.
    let got = c.recv();
    assert!(
        matches!(got.as_slice(), [Out::Content { method: Method::BasicReturn(r), body, .. }]
            if r.reply_code == 312 && &body[..] == b"2"),
        "{got:?}"
    );
    assert_eq!(drain(&mut core, &mut c, "q1"), vec!["1"]);
    assert_eq!(drain(&mut core, &mut c, "q2"), vec!["1"]);
}

#[test]
fn malformed_arguments_are_refused() {
    for (args, text) in [
        (
            table(&[("x-message-deduplication", long_str("yes"))]),
            "PRECONDITION_FAILED - x-message-deduplication header not a Bool",
        ),
        (
            dedup_args(&[("x-cache-size", FieldValue::I32(0))]),
            "PRECONDITION_FAILED - x-cache-size must be between 1 and 10000000",
        ),
    ] {
        let (mut core, mut c) = setup();
        let got = core.call(
            &mut c,
            1,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: ShortStr::from("q"),
                arguments: args,
                ..Default::default()
            }),
        );
        assert_eq!(channel_close(&got), Some((406, text.to_string())));
    }
}
