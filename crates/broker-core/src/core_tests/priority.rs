//! Priority queues (`x-max-priority`): highest priority first with
//! basic.get and consumers, priorities capped at the maximum, requeued
//! messages back at their place in their lane, TTL, length limits and
//! dead-lettering — the semantics the black-box tests check against
//! RabbitMQ 3.10, here on the test clock.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{bodies, Core, Out, Wire};

fn prio(p: Option<u8>) -> BasicProperties {
    BasicProperties {
        priority: p,
        ..Default::default()
    }
}

fn max_prio(n: i32) -> (&'static str, FieldValue) {
    ("x-max-priority", FieldValue::I32(n))
}

/// Publishes (body, priority) pairs to `q` through the default exchange,
/// in one socket read.
fn publish(core: &mut Core, c: &Client, q: &str, msgs: &[(&str, Option<u8>)]) {
    let mut w = Wire::new();
    for (b, p) in msgs {
        w = w.publish(1, "", q, &prio(*p), b.as_bytes());
    }
    core.input(c, w);
}

const MIXED: [(&str, Option<u8>); 6] = [
    ("a0", None),
    ("b9", Some(9)),
    ("c3", Some(3)),
    ("d1", Some(1)),
    ("e0", Some(0)),
    ("f200", Some(200)),
];
/// MIXED in a queue with x-max-priority 3: 9 and 200 count as 3.
const MIXED_ORDER: [&str; 6] = ["b9", "c3", "f200", "d1", "a0", "e0"];

fn get_count(o: &Out) -> u32 {
    match o.method() {
        Method::BasicGetOk(g) => g.message_count,
        m => panic!("not a get-ok: {m:?}"),
    }
}

#[test]
fn get_serves_highest_priority_first_capped_at_max() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", table(&[max_prio(3)]));
    publish(&mut core, &c, "q", &MIXED);
    assert_eq!(core.queue_depth("q"), Some(6));
    let mut got = Vec::new();
    let mut counts = Vec::new();
    while let Some(o) = get(&mut core, &mut c, "q", true) {
        assert!(!redelivered(&o));
        counts.push(get_count(&o));
        // The priority property is delivered as published (not capped).
        let Out::Content { properties, .. } = &o else {
            unreachable!()
        };
        let want = MIXED.iter().find(|(b, _)| b.as_bytes() == o.body());
        assert_eq!(Some(properties.priority), want.map(|(_, p)| *p));
        got.push(String::from_utf8_lossy(o.body()).into_owned());
    }
    assert_eq!(got, MIXED_ORDER);
    assert_eq!(counts, vec![5, 4, 3, 2, 1, 0], "get-ok message_count");
}

#[test]
fn consumers_receive_highest_priority_first() {
    for no_ack in [true, false] {
        let (mut core, mut c) = setup();
        core.declare_queue(&mut c, 1, "q", table(&[max_prio(3)]));
        publish(&mut core, &c, "q", &MIXED);
        if !no_ack {
            let qos = Method::BasicQos(amqp_codec::BasicQos {
                prefetch_count: 1,
                ..Default::default()
            });
            assert_eq!(core.call(&mut c, 1, qos).len(), 1);
        }
        let mut got = bodies(&core.consume(&mut c, 1, "q", "k", no_ack));
        if !no_ack {
            // One at a time: each ack releases the next highest.
            assert_eq!(got, vec!["b9"]);
            for tag in 1..=6u64 {
                let ack = Method::BasicAck(amqp_codec::BasicAck {
                    delivery_tag: tag,
                    multiple: false,
                });
                got.extend(bodies(&core.call(&mut c, 1, ack)));
            }
        }
        assert_eq!(got, MIXED_ORDER, "no_ack={no_ack}");
    }
}

#[test]
fn new_high_priority_message_overtakes_waiting_ones() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", table(&[max_prio(5)]));
    publish(&mut core, &c, "q", &[("l1", Some(1)), ("l2", Some(1))]);
    assert_eq!(
        get(&mut core, &mut c, "q", true).map(|o| o.body().to_vec()),
        Some(b"l1".to_vec())
    );
    publish(&mut core, &c, "q", &[("h", Some(4)), ("z", None)]);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["h", "l2", "z"]);
}

#[test]
fn requeued_messages_return_to_their_place_in_their_lane() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 1, "q", table(&[max_prio(5)]));
    publish(
        &mut core,
        &c,
        "q",
        &[
            ("h1", Some(5)),
            ("l1", Some(1)),
            ("h2", Some(5)),
            ("l2", Some(1)),
            ("h3", Some(5)),
        ],
    );
    // Take four on channel 2, acks pending.
    let mut tags = Vec::new();
    for want in ["h1", "h2", "h3", "l1"] {
        let got = core.call(
            &mut c,
            2,
            Method::BasicGet(amqp_codec::BasicGet {
                queue: ShortStr::from("q"),
                no_ack: false,
                ..Default::default()
            }),
        );
        assert_eq!(bodies(&got), vec![want]);
        tags.push(delivery_tag(&got[0]));
    }
    let nack = |tag| {
        Method::BasicNack(amqp_codec::BasicNack {
            delivery_tag: tag,
            multiple: false,
            requeue: true,
        })
    };
    assert!(core.call(&mut c, 2, nack(tags[1])).is_empty());
    assert!(core.call(&mut c, 2, nack(tags[3])).is_empty());
    let reject = Method::BasicReject(amqp_codec::BasicReject {
        delivery_tag: tags[2],
        requeue: true,
    });
    assert!(core.call(&mut c, 2, reject).is_empty());
    // h1 comes back when its channel closes.
    let close = Method::ChannelClose(amqp_codec::ChannelClose {
        reply_code: 200,
        ..Default::default()
    });
    assert_eq!(
        core.call(&mut c, 2, close),
        vec![Out::Method(2, Method::ChannelCloseOk(Default::default()))]
    );
    let mut order = Vec::new();
    while let Some(o) = get(&mut core, &mut c, "q", true) {
        order.push((
            String::from_utf8_lossy(o.body()).into_owned(),
            redelivered(&o),
        ));
    }
    let want: Vec<(String, bool)> = [
        ("h1", true),
        ("h2", true),
        ("h3", true),
        ("l1", true),
        ("l2", false),
    ]
    .iter()
    .map(|(b, r)| (b.to_string(), *r))
    .collect();
    assert_eq!(order, want);
}

#[test]
fn basic_recover_requeues_into_lanes() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", table(&[max_prio(2)]));
    publish(
        &mut core,
        &c,
        "q",
        &[("x0", Some(0)), ("y2", Some(2)), ("z1", Some(1))],
    );
    for want in ["y2", "z1"] {
        let o = get(&mut core, &mut c, "q", false).expect("a message");
        assert_eq!(o.body(), want.as_bytes());
    }
    let got = core.call(
        &mut c,
        1,
        Method::BasicRecover(amqp_codec::BasicRecover { requeue: true }),
    );
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::BasicRecoverOk(_))]),
        "{got:?}"
    );
    let mut order = Vec::new();
    while let Some(o) = get(&mut core, &mut c, "q", true) {
        order.push((
            String::from_utf8_lossy(o.body()).into_owned(),
            redelivered(&o),
        ));
    }
    assert_eq!(
        order,
        vec![
            ("y2".to_string(), true),
            ("z1".to_string(), true),
            ("x0".to_string(), false)
        ]
    );
}

/// RabbitMQ expires from the next message to deliver: an expired message
/// in a lower lane stays (and is counted) while a higher lane has a live
/// head, and goes once it would be next.
#[test]
fn per_message_ttl_expires_from_the_head_of_the_top_lane() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", table(&[max_prio(5)]));
    let short = BasicProperties {
        priority: Some(0),
        expiration: Some(ShortStr::from("100")),
        ..Default::default()
    };
    core.input(&c, Wire::new().publish(1, "", "q", &short, b"low"));
    publish(&mut core, &c, "q", &[("high", Some(5))]);
    core.advance_ms(700);
    assert_eq!(
        core.queue_depth("q"),
        Some(2),
        "expired low behind live high"
    );
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["high"]);
    assert_eq!(core.queue_depth("q"), Some(0));
}

#[test]
fn queue_ttl_expires_lane_heads_from_the_top() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[max_prio(5), ("x-message-ttl", FieldValue::I32(200))]),
    );
    publish(
        &mut core,
        &c,
        "q",
        &[("a", Some(1)), ("b", Some(4)), ("c", None)],
    );
    core.advance_ms(150);
    assert_eq!(core.queue_depth("q"), Some(3));
    publish(&mut core, &c, "q", &[("d", Some(2))]);
    core.advance_ms(100);
    // As RabbitMQ's priority queue drops expired heads lane by lane from
    // the top, stopping at the first live head: b goes, a and c stay
    // (counted) behind the live d until d is gone.
    assert_eq!(core.queue_depth("q"), Some(3), "a and c behind live d");
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["d"]);
    assert_eq!(core.queue_depth("q"), Some(0));
}

fn x_first_death_reason(o: &Out) -> Option<String> {
    let Out::Content { properties, .. } = o else {
        return None;
    };
    properties
        .headers
        .as_ref()?
        .get("x-first-death-reason")?
        .as_str()
        .map(str::to_string)
}

/// drop-head drops the next message to deliver: the head of the highest
/// non-empty lane (the one just published, if it is the highest).
#[test]
fn max_length_drop_head_drops_the_highest_priority_and_dead_letters_it() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "dlq", FieldTable::new());
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[
            max_prio(5),
            ("x-max-length", FieldValue::I32(3)),
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str("dlq")),
        ]),
    );
    publish(
        &mut core,
        &c,
        "q",
        &[
            ("a0", Some(0)),
            ("b5", Some(5)),
            ("c2", Some(2)),
            ("d1", Some(1)),
            ("e5", Some(5)),
        ],
    );
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["c2", "d1", "a0"]);
    let dead = get(&mut core, &mut c, "dlq", true).expect("dead letter");
    assert_eq!(dead.body(), b"b5");
    assert_eq!(x_first_death_reason(&dead).as_deref(), Some("maxlen"));
    let Out::Content { properties, .. } = &dead else {
        unreachable!()
    };
    assert_eq!(properties.priority, Some(5), "priority kept");
    assert_eq!(drain(&mut core, &mut c, "dlq"), vec!["e5"]);
}

#[test]
fn max_length_reject_publish_refuses_even_high_priority() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[
            max_prio(5),
            ("x-max-length", FieldValue::I32(2)),
            ("x-overflow", long_str("reject-publish")),
        ]),
    );
    let got = core.call(&mut c, 1, Method::ConfirmSelect(Default::default()));
    assert_eq!(got.len(), 1);
    publish(
        &mut core,
        &c,
        "q",
        &[("a0", Some(0)), ("b5", Some(5)), ("c5", Some(5))],
    );
    let got = c.recv();
    let acks: Vec<(bool, u64)> = got
        .iter()
        .map(|o| match o.method() {
            Method::BasicAck(a) => (true, a.delivery_tag),
            Method::BasicNack(n) => (false, n.delivery_tag),
            m => panic!("{m:?}"),
        })
        .collect();
    assert!(acks.contains(&(false, 3)), "{acks:?}");
    assert!(!acks.iter().any(|(ok, t)| !ok && *t != 3), "{acks:?}");
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["b5", "a0"]);
}

#[test]
fn max_length_bytes_on_a_priority_queue() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[max_prio(5), ("x-max-length-bytes", FieldValue::I32(6))]),
    );
    // 2 + 2 + 2 bytes fit; the fourth drops the head of the top lane.
    publish(
        &mut core,
        &c,
        "q",
        &[("a0", Some(0)), ("b3", Some(3)), ("c1", Some(1))],
    );
    assert_eq!(core.queue_depth("q"), Some(3));
    publish(&mut core, &c, "q", &[("d0", Some(0))]);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["c1", "a0", "d0"]);
}

/// Dead-lettered messages keep their priority: a priority DLQ orders them.
#[test]
fn rejected_messages_dead_letter_into_a_priority_queue_in_priority_order() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "dlq", table(&[max_prio(9)]));
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str("dlq")),
        ]),
    );
    publish(
        &mut core,
        &c,
        "q",
        &[("p1", Some(1)), ("p7", Some(7)), ("p3", Some(3))],
    );
    for want in ["p1", "p7", "p3"] {
        let o = get(&mut core, &mut c, "q", false).expect("a message");
        assert_eq!(o.body(), want.as_bytes(), "the source queue is FIFO");
        let reject = Method::BasicReject(amqp_codec::BasicReject {
            delivery_tag: delivery_tag(&o),
            requeue: false,
        });
        assert!(core.call(&mut c, 1, reject).is_empty());
    }
    assert_eq!(core.queue_depth("dlq"), Some(3));
    assert_eq!(drain(&mut core, &mut c, "dlq"), vec!["p7", "p3", "p1"]);
}

#[test]
fn max_priority_zero_is_fifo() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", table(&[max_prio(0)]));
    publish(
        &mut core,
        &c,
        "q",
        &[("a0", Some(0)), ("b5", Some(5)), ("c2", Some(2))],
    );
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["a0", "b5", "c2"]);
}

#[test]
fn invalid_max_priority_is_refused_with_rabbitmq_texts() {
    for (v, text) in [
        (
            FieldValue::I32(-1),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/': {value_negative,-1}",
        ),
        (
            FieldValue::LongStr(bytes::Bytes::from_static(b"5")),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/': \"expected integer, got longstr\"",
        ),
        (
            FieldValue::I32(256),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}",
        ),
    ] {
        let (mut core, mut c) = setup();
        let got = core.call(
            &mut c,
            1,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: ShortStr::from("q"),
                arguments: table(&[("x-max-priority", v.clone())]),
                ..Default::default()
            }),
        );
        assert_eq!(
            channel_close(&got),
            Some((406, text.to_string())),
            "{v:?}"
        );
        assert_eq!(core.queue_depth("q"), None);
    }
}
