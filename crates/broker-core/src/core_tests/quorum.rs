//! Quorum queues (`x-queue-type: quorum`): the declare rules (durable, not
//! exclusive or auto-delete, server-named refused, stream unsupported),
//! `x-delivery-count` on redeliveries and every get-ok, `x-delivery-limit`
//! dead-lettering with reason `delivery_limit`, where returned messages go,
//! and global qos refused.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{bodies, Core, Out, Wire};

fn quorum_args(extra: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = table(extra);
    t.insert(ShortStr::from("x-queue-type"), long_str("quorum"));
    t
}

/// queue.declare's flags: durable, exclusive, auto-delete, passive.
type Flags = (bool, bool, bool, bool);

fn declare(
    core: &mut Core,
    c: &mut Client,
    ch: u16,
    name: &str,
    (durable, exclusive, auto_delete, passive): Flags,
    arguments: FieldTable,
) -> Vec<Out> {
    core.call(
        c,
        ch,
        Method::QueueDeclare(amqp_codec::QueueDeclare {
            queue: ShortStr::from(name),
            durable,
            exclusive,
            auto_delete,
            passive,
            arguments,
            ..Default::default()
        }),
    )
}

/// A durable quorum queue `q` with `extra` arguments.
fn quorum(core: &mut Core, c: &mut Client, extra: &[(&str, FieldValue)]) {
    let got = declare(
        core,
        c,
        1,
        "q",
        (true, false, false, false),
        quorum_args(extra),
    );
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::QueueDeclareOk(_))]),
        "{got:?}"
    );
}

fn headers(o: &Out) -> FieldTable {
    match o {
        Out::Content { properties, .. } => properties.headers.clone().unwrap_or_default(),
        Out::Method(..) => panic!("not content: {o:?}"),
    }
}

fn delivery_count(o: &Out) -> Option<FieldValue> {
    headers(o).get("x-delivery-count").cloned()
}

fn with_header_a() -> BasicProperties {
    BasicProperties {
        headers: Some(table(&[("a", FieldValue::I32(1))])),
        ..Default::default()
    }
}

fn nack(tag: u64) -> Method {
    Method::BasicNack(amqp_codec::BasicNack {
        delivery_tag: tag,
        multiple: false,
        requeue: true,
    })
}

#[test]
fn quorum_properties_are_required_in_rabbitmq_order() {
    let cases = [
        ((false, false, false), "non-durable"),
        ((true, true, false), "exclusive-owner"),
        ((true, false, true), "auto-delete"),
        ((false, true, true), "auto-delete"),
    ];
    for ((durable, exclusive, auto_delete), prop) in cases {
        let (mut core, mut c) = setup();
        let got = declare(
            &mut core,
            &mut c,
            1,
            "q",
            (durable, exclusive, auto_delete, false),
            quorum_args(&[]),
        );
        assert_eq!(
            channel_close(&got),
            Some((
                406,
                format!(
                    "PRECONDITION_FAILED - invalid property '{prop}' for queue 'q' in vhost '/'"
                )
            )),
            "{durable} {exclusive} {auto_delete}"
        );
        assert_eq!(core.queue_depth("q"), None);
    }
}

#[test]
fn quorum_declare_redeclare_passive_and_server_named() {
    let (mut core, mut c) = setup();
    quorum(&mut core, &mut c, &[]);
    quorum(&mut core, &mut c, &[]);
    assert!(
        core.store.lock().queues.contains(&"q".to_string()),
        "stored"
    );
    // Passive: no arguments or flags needed.
    let got = declare(
        &mut core,
        &mut c,
        1,
        "q",
        (false, false, false, true),
        FieldTable::new(),
    );
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::QueueDeclareOk(_))]),
        "{got:?}"
    );
    // Redeclared without the type: inequivalent.
    let got = declare(
        &mut core,
        &mut c,
        1,
        "q",
        (true, false, false, false),
        FieldTable::new(),
    );
    assert_eq!(
        channel_close(&got),
        Some((406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received none but current is the value 'quorum' of type 'longstr'".to_string()))
    );
    core.open_channel(&mut c, 2);
    let got = declare(
        &mut core,
        &mut c,
        2,
        "",
        (true, false, false, false),
        quorum_args(&[]),
    );
    assert_eq!(
        channel_close(&got),
        Some((406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue".to_string()))
    );
}

#[test]
fn unsupported_and_foreign_arguments_are_refused() {
    let cases = [
        (
            table(&[("x-queue-type", long_str("stream"))]),
            "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'stream'\"",
        ),
        (
            quorum_args(&[("x-max-priority", FieldValue::I32(3))]),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue",
        ),
        (
            table(&[("x-delivery-limit", FieldValue::I32(3))]),
            "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue",
        ),
    ];
    for (args, text) in cases {
        let (mut core, mut c) = setup();
        let got = declare(&mut core, &mut c, 1, "q", (true, false, false, false), args);
        assert_eq!(channel_close(&got), Some((406, text.to_string())));
        assert_eq!(core.queue_depth("q"), None);
    }
}

#[test]
fn every_get_ok_carries_the_delivery_count() {
    let (mut core, mut c) = setup();
    quorum(&mut core, &mut c, &[]);
    core.input(&c, Wire::new().publish(1, "", "q", &with_header_a(), b"m"));
    for n in 0..3i64 {
        let o = get(&mut core, &mut c, "q", false).expect("a message");
        assert_eq!(o.body(), b"m");
        assert_eq!(redelivered(&o), n > 0);
        let mut want = table(&[("a", FieldValue::I32(1))]);
        want.insert(ShortStr::from("x-delivery-count"), FieldValue::I64(n));
        assert_eq!(headers(&o), want);
        assert!(core.call(&mut c, 1, nack(delivery_tag(&o))).is_empty());
    }
}

#[test]
fn every_return_counts_on_the_consumer_path() {
    let (mut core, mut c) = setup();
    quorum(&mut core, &mut c, &[]);
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &BasicProperties::default(), b"m"),
    );
    let cancel = |tag: &str| {
        Method::BasicCancel(amqp_codec::BasicCancel {
            consumer_tag: ShortStr::from(tag),
            no_wait: false,
        })
    };
    let first = core.consume(&mut c, 1, "q", "k1", false);
    assert_eq!(bodies(&first), vec!["m"]);
    assert!(!redelivered(&first[0]));
    assert_eq!(delivery_count(&first[0]), None, "first delivery: no count");
    assert_eq!(core.call(&mut c, 1, cancel("k1")).len(), 1);
    // reject with requeue: 1
    let reject = Method::BasicReject(amqp_codec::BasicReject {
        delivery_tag: delivery_tag(&first[0]),
        requeue: true,
    });
    assert!(core.call(&mut c, 1, reject).is_empty());
    let d = core.consume(&mut c, 1, "q", "k2", false);
    assert!(redelivered(&d[0]));
    assert_eq!(delivery_count(&d[0]), Some(FieldValue::I64(1)));
    assert_eq!(core.call(&mut c, 1, cancel("k2")).len(), 1);
    // basic.recover: 2
    let got = core.call(
        &mut c,
        1,
        Method::BasicRecover(amqp_codec::BasicRecover { requeue: true }),
    );
    assert_eq!(got.len(), 1, "{got:?}");
    let d = core.consume(&mut c, 1, "q", "k3", false);
    assert_eq!(delivery_count(&d[0]), Some(FieldValue::I64(2)));
    // channel close: 3
    let close = Method::ChannelClose(amqp_codec::ChannelClose {
        reply_code: 200,
        ..Default::default()
    });
    assert_eq!(core.call(&mut c, 1, close).len(), 1);
    core.open_channel(&mut c, 2);
    let got = core.call(
        &mut c,
        2,
        Method::BasicConsume(amqp_codec::BasicConsume {
            queue: ShortStr::from("q"),
            consumer_tag: ShortStr::from("k4"),
            ..Default::default()
        }),
    );
    assert_eq!(delivery_count(&got[1]), Some(FieldValue::I64(3)));
    // connection lost: 4
    core.disconnect(c);
    let mut c = core.connect();
    core.open_channel(&mut c, 1);
    let d = core.consume(&mut c, 1, "q", "k5", true);
    assert_eq!(bodies(&d), vec!["m"]);
    assert_eq!(delivery_count(&d[0]), Some(FieldValue::I64(4)));
    assert_eq!(core.queue_depth("q"), Some(0));
}

#[test]
fn past_the_delivery_limit_dead_letters_with_reason_delivery_limit() {
    let (mut core, mut c) = setup();
    declare_exchange(&mut core, &mut c, "dlx", "fanout");
    core.declare_queue(&mut c, 1, "dlq", FieldTable::new());
    bind(&mut core, &mut c, "dlq", "dlx", "", FieldTable::new());
    quorum(
        &mut core,
        &mut c,
        &[
            ("x-delivery-limit", FieldValue::I32(2)),
            ("x-dead-letter-exchange", long_str("dlx")),
        ],
    );
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &with_header_a(), b"one"),
    );
    for n in 0..3i64 {
        assert_eq!(core.queue_depth("dlq"), Some(0), "not before return {n}");
        let o = get(&mut core, &mut c, "q", false).expect("a message");
        assert_eq!(delivery_count(&o), Some(FieldValue::I64(n)));
        assert!(core.call(&mut c, 1, nack(delivery_tag(&o))).is_empty());
    }
    assert_eq!(core.queue_depth("q"), Some(0));
    let dead = get(&mut core, &mut c, "dlq", true).expect("dead-lettered");
    assert_eq!(dead.body(), b"one");
    let h = headers(&dead);
    assert_eq!(h.get("a"), Some(&FieldValue::I32(1)));
    assert_eq!(h.get("x-delivery-count"), None, "the count is not stored");
    assert_eq!(
        h.get("x-first-death-reason").and_then(|v| v.as_str()),
        Some("delivery_limit")
    );
    assert_eq!(
        h.get("x-first-death-queue").and_then(|v| v.as_str()),
        Some("q")
    );
    let Some(FieldValue::Array(deaths)) = h.get("x-death") else {
        panic!("no x-death: {h:?}")
    };
    let Some(FieldValue::Table(death)) = deaths.first() else {
        panic!("{deaths:?}")
    };
    assert_eq!(
        death.get("reason").and_then(|v| v.as_str()),
        Some("delivery_limit")
    );
    assert_eq!(death.get("count").and_then(|v| v.as_i64()), Some(1));
    assert_eq!(death.get("exchange").and_then(|v| v.as_str()), Some(""));
}

#[test]
fn past_the_delivery_limit_without_dlx_drops() {
    let (mut core, mut c) = setup();
    quorum(
        &mut core,
        &mut c,
        &[("x-delivery-limit", FieldValue::I32(0))],
    );
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &BasicProperties::default(), b"m"),
    );
    let o = get(&mut core, &mut c, "q", false).expect("a message");
    assert!(core.call(&mut c, 1, nack(delivery_tag(&o))).is_empty());
    assert_eq!(core.queue_depth("q"), Some(0));
    assert!(get(&mut core, &mut c, "q", true).is_none());
}

#[test]
fn channel_close_counts_towards_the_limit() {
    let (mut core, mut c) = setup();
    quorum(
        &mut core,
        &mut c,
        &[("x-delivery-limit", FieldValue::I32(1))],
    );
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &BasicProperties::default(), b"m"),
    );
    for ch in [2u16, 3] {
        assert_eq!(core.queue_depth("q"), Some(1));
        core.open_channel(&mut c, ch);
        let got = core.call(
            &mut c,
            ch,
            Method::BasicConsume(amqp_codec::BasicConsume {
                queue: ShortStr::from("q"),
                consumer_tag: ShortStr::from("k"),
                ..Default::default()
            }),
        );
        assert_eq!(bodies(&got), vec!["m"]);
        let close = Method::ChannelClose(amqp_codec::ChannelClose {
            reply_code: 200,
            ..Default::default()
        });
        assert_eq!(core.call(&mut c, ch, close).len(), 1);
    }
    assert_eq!(core.queue_depth("q"), Some(0));
}

/// Publishes 1, 2, 3 to `q`, gets 1 and 2 unacked: (tag of 1, tag of 2).
fn two_out_one_in(core: &mut Core, c: &mut Client) -> (u64, u64) {
    let mut w = Wire::new();
    for b in ["1", "2", "3"] {
        w = w.publish(1, "", "q", &BasicProperties::default(), b.as_bytes());
    }
    core.input(c, w);
    let m1 = get(core, c, "q", false).expect("1");
    let m2 = get(core, c, "q", false).expect("2");
    (delivery_tag(&m1), delivery_tag(&m2))
}

#[test]
fn returned_messages_go_to_the_tail_without_a_limit() {
    let (mut core, mut c) = setup();
    quorum(&mut core, &mut c, &[]);
    let (t1, t2) = two_out_one_in(&mut core, &mut c);
    assert!(core.call(&mut c, 1, nack(t2)).is_empty());
    assert!(core.call(&mut c, 1, nack(t1)).is_empty());
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["3", "2", "1"]);
}

#[test]
fn returned_messages_go_to_the_head_with_a_limit() {
    let (mut core, mut c) = setup();
    quorum(
        &mut core,
        &mut c,
        &[("x-delivery-limit", FieldValue::I32(5))],
    );
    let (t1, t2) = two_out_one_in(&mut core, &mut c);
    assert!(core.call(&mut c, 1, nack(t2)).is_empty());
    assert!(core.call(&mut c, 1, nack(t1)).is_empty());
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["2", "1", "3"]);
}

#[test]
fn returned_messages_go_to_the_head_on_channel_close() {
    let (mut core, mut c) = setup();
    quorum(&mut core, &mut c, &[]);
    let _ = two_out_one_in(&mut core, &mut c);
    let close = Method::ChannelClose(amqp_codec::ChannelClose {
        reply_code: 200,
        ..Default::default()
    });
    assert_eq!(core.call(&mut c, 1, close).len(), 1);
    core.open_channel(&mut c, 1);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["1", "2", "3"]);
}

#[test]
fn classic_requeue_keeps_its_place_and_has_no_count() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    let (t1, t2) = two_out_one_in(&mut core, &mut c);
    assert!(core.call(&mut c, 1, nack(t2)).is_empty());
    assert!(core.call(&mut c, 1, nack(t1)).is_empty());
    let o = get(&mut core, &mut c, "q", true).expect("1");
    assert_eq!(o.body(), b"1");
    assert!(redelivered(&o));
    assert_eq!(delivery_count(&o), None);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["2", "3"]);
}

#[test]
fn global_qos_consume_on_a_quorum_queue_is_540() {
    let (mut core, mut c) = setup();
    quorum(&mut core, &mut c, &[]);
    let qos = Method::BasicQos(amqp_codec::BasicQos {
        prefetch_count: 5,
        global: true,
        ..Default::default()
    });
    assert_eq!(core.call(&mut c, 1, qos).len(), 1);
    let got = core.call(
        &mut c,
        1,
        Method::BasicConsume(amqp_codec::BasicConsume {
            queue: ShortStr::from("q"),
            ..Default::default()
        }),
    );
    let close = got.iter().find_map(|o| match o {
        Out::Method(0, Method::ConnectionClose(cl)) => {
            Some((cl.reply_code, cl.reply_text.to_string()))
        }
        _ => None,
    });
    assert_eq!(
        close,
        Some((
            540,
            "NOT_IMPLEMENTED - queue 'q' in vhost '/' does not support global qos".to_string()
        ))
    );
}
