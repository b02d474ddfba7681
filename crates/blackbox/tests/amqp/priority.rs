//! Priority queues (`x-max-priority`), as RabbitMQ 3.10 runs them: the
//! message `priority` property (absent = 0, capped at the maximum) picks a
//! lane, higher lanes are served first, FIFO within a lane; requeued
//! messages go back to their place; drop-head and TTL look at the next
//! message to deliver; argument validation and equivalence texts.

use std::time::Duration;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use crate::harness::*;
use crate::node::{connect_retry, Node};

fn args(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(k), v);
    }
    t
}

fn max_prio(n: i32) -> (&'static str, AMQPValue) {
    ("x-max-priority", AMQPValue::LongInt(n))
}

/// An auto-delete queue with arguments (auto-delete, not exclusive, so
/// several channels may use it; it goes when its last consumer does or
/// with `delete`).
async fn declare(ch: &Channel, name: &str, a: FieldTable) {
    ch.queue_declare(name, QueueDeclareOptions::default(), a)
        .await
        .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

async fn delete(ch: &Channel, name: &str) {
    ch.queue_delete(name, QueueDeleteOptions::default())
        .await
        .unwrap();
}

fn props(priority: Option<u8>) -> BasicProperties {
    let p = BasicProperties::default();
    match priority {
        Some(n) => p.with_priority(n),
        None => p,
    }
}

/// Publishes (body, priority) to the default exchange on a confirm channel
/// and waits for every confirm, so all are enqueued afterwards.
async fn publish(conn: &Connection, q: &str, msgs: &[(&str, Option<u8>)], extra: BasicProperties) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for (body, p) in msgs {
        let mut pr = props(*p);
        if let Some(e) = extra.expiration() {
            pr = pr.with_expiration(e.clone());
        }
        if let Some(d) = extra.delivery_mode() {
            pr = pr.with_delivery_mode(*d);
        }
        let c = ch
            .basic_publish("", q, Default::default(), body.as_bytes(), pr)
            .await
            .unwrap();
        assert!(within("confirm", c).await.unwrap().is_ack());
    }
    ch.close(200, "ok").await.unwrap();
}

/// Drains with basic.get no-ack: (body, redelivered, message_count).
async fn drain(ch: &Channel, q: &str) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get(q, BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        out.push((
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.redelivered,
            m.message_count,
        ));
    }
    out
}

fn bodies(v: &[(String, bool, u32)]) -> Vec<&str> {
    v.iter().map(|(b, _, _)| b.as_str()).collect()
}

async fn count(ch: &Channel, q: &str) -> u32 {
    ch.queue_declare(
        q,
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
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

#[tokio::test]
async fn basic_get_serves_highest_priority_first_capped_at_max() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.get");
    declare(&ch, &q, args(vec![max_prio(3)])).await;
    publish(&conn, &q, &MIXED, BasicProperties::default()).await;
    assert_eq!(count(&ch, &q).await, 6);
    let got = drain(&ch, &q).await;
    assert_eq!(bodies(&got), MIXED_ORDER);
    let counts: Vec<u32> = got.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(counts, vec![5, 4, 3, 2, 1, 0], "get-ok message_count");
    assert!(got.iter().all(|(_, r, _)| !r));
    delete(&ch, &q).await;
}

#[tokio::test]
async fn consumer_receives_highest_priority_first() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.consume");
    declare(&ch, &q, args(vec![max_prio(3)])).await;
    publish(&conn, &q, &MIXED, BasicProperties::default()).await;
    for no_ack in [false, true] {
        if !no_ack {
            // Prefetch 1: one message at a time, acked in order.
            ch.basic_qos(1, Default::default()).await.unwrap();
        } else {
            publish(&conn, &q, &MIXED, BasicProperties::default()).await;
        }
        let mut c = ch
            .basic_consume(
                &q,
                &format!("c{no_ack}"),
                BasicConsumeOptions {
                    no_ack,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..MIXED.len() {
            let d = next_delivery(&mut c).await;
            got.push(String::from_utf8(d.data.clone()).unwrap());
            if !no_ack {
                d.ack(Default::default()).await.unwrap();
            }
        }
        assert_eq!(got, MIXED_ORDER, "no_ack={no_ack}");
        no_delivery(&mut c).await;
        ch.basic_cancel(c.tag().as_str(), Default::default())
            .await
            .unwrap();
    }
    delete(&ch, &q).await;
}

#[tokio::test]
async fn requeued_messages_return_to_their_place_in_their_lane() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.requeue");
    declare(&ch, &q, args(vec![max_prio(5)])).await;
    let msgs = [
        ("h1", Some(5)),
        ("l1", Some(1)),
        ("h2", Some(5)),
        ("l2", Some(1)),
        ("h3", Some(5)),
    ];
    publish(&conn, &q, &msgs, BasicProperties::default()).await;
    // Take four (h1 h2 h3 l1) on a second channel, acks pending.
    let ch2 = conn.create_channel().await.unwrap();
    let mut tags = Vec::new();
    for want in ["h1", "h2", "h3", "l1"] {
        let m = ch2
            .basic_get(&q, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(m.delivery.data, want.as_bytes());
        tags.push(m.delivery.delivery_tag);
    }
    // nack h2 and l1 with requeue; reject h3 with requeue; h1 comes back
    // when the channel closes.
    ch2.basic_nack(
        tags[1],
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .unwrap();
    ch2.basic_nack(
        tags[3],
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .unwrap();
    ch2.basic_reject(tags[2], BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    ch2.close(200, "ok").await.unwrap();
    let got = drain(&ch, &q).await;
    let order: Vec<(&str, bool)> = got.iter().map(|(b, r, _)| (b.as_str(), *r)).collect();
    assert_eq!(
        order,
        vec![
            ("h1", true),
            ("h2", true),
            ("h3", true),
            ("l1", true),
            ("l2", false)
        ]
    );
    delete(&ch, &q).await;
}

#[tokio::test]
async fn basic_recover_requeues_into_lanes() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.recover");
    declare(&ch, &q, args(vec![max_prio(2)])).await;
    publish(
        &conn,
        &q,
        &[("x0", Some(0)), ("y2", Some(2)), ("z1", Some(1))],
        BasicProperties::default(),
    )
    .await;
    for want in ["y2", "z1"] {
        let m = ch
            .basic_get(&q, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(m.delivery.data, want.as_bytes());
    }
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let got = drain(&ch, &q).await;
    let order: Vec<(&str, bool)> = got.iter().map(|(b, r, _)| (b.as_str(), *r)).collect();
    assert_eq!(order, vec![("y2", true), ("z1", true), ("x0", false)]);
    delete(&ch, &q).await;
}

/// RabbitMQ expires from the next message to deliver: an expired message
/// in a lower lane stays (and is counted) while a higher lane has a live
/// head, and goes once it would be next.
#[tokio::test]
async fn ttl_expires_from_the_head_of_the_top_lane() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.ttl");
    declare(&ch, &q, args(vec![max_prio(5)])).await;
    publish(
        &conn,
        &q,
        &[("low", Some(0))],
        BasicProperties::default().with_expiration(ShortString::from("100")),
    )
    .await;
    publish(&conn, &q, &[("high", Some(5))], BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        count(&ch, &q).await,
        2,
        "expired low message behind a live high one"
    );
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["high"]);
    assert_eq!(count(&ch, &q).await, 0);
    delete(&ch, &q).await;

    // Per-queue TTL: every lane expires.
    let q = uniq("prio.qttl");
    declare(
        &ch,
        &q,
        args(vec![
            max_prio(5),
            ("x-message-ttl", AMQPValue::LongInt(200)),
        ]),
    )
    .await;
    publish(
        &conn,
        &q,
        &[("a", Some(1)), ("b", Some(4)), ("c", None)],
        BasicProperties::default(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&ch, &q).await, 0);
    delete(&ch, &q).await;
}

/// drop-head drops the next message to deliver: the head of the highest
/// non-empty lane (the one just published, if it is the highest).
#[tokio::test]
async fn max_length_drop_head_drops_highest_priority_and_dead_letters_it() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let n = uniq("prio.maxlen");
    let (q, dlx, dlq) = (format!("{n}.q"), format!("{n}.dlx"), format!("{n}.dlq"));
    ch.exchange_declare(
        &dlx,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, &dlq, FieldTable::default()).await;
    ch.queue_bind(&dlq, &dlx, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    declare(
        &ch,
        &q,
        args(vec![
            max_prio(5),
            ("x-max-length", AMQPValue::LongInt(3)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from(dlx.as_str())),
            ),
        ]),
    )
    .await;
    let msgs = [
        ("a0", Some(0)),
        ("b5", Some(5)),
        ("c2", Some(2)),
        ("d1", Some(1)),
        ("e5", Some(5)),
    ];
    publish(&conn, &q, &msgs, BasicProperties::default()).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["c2", "d1", "a0"]);
    let dead = within("dead letters", async {
        loop {
            if count(&ch, &dlq).await >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    dead.await;
    let m = ch
        .basic_get(&dlq, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("dead letter");
    assert_eq!(m.delivery.data, b"b5");
    let deaths = m.delivery.properties.headers().as_ref().and_then(|h| {
        h.inner()
            .get("x-first-death-reason")
            .and_then(|v| v.as_long_string().map(|s| s.to_string()))
    });
    assert_eq!(deaths.as_deref(), Some("maxlen"));
    assert_eq!(m.delivery.properties.priority(), &Some(5));
    assert_eq!(bodies(&drain(&ch, &dlq).await), vec!["e5"]);
    delete(&ch, &q).await;
    delete(&ch, &dlq).await;
}

/// Dead-lettered messages keep their priority property: a priority DLQ
/// orders them by it.
#[tokio::test]
async fn rejected_messages_dead_letter_into_a_priority_queue_in_priority_order() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let n = uniq("prio.dlx");
    let (q, dlq) = (format!("{n}.q"), format!("{n}.dlq"));
    declare(&ch, &dlq, args(vec![max_prio(9)])).await;
    declare(
        &ch,
        &q,
        args(vec![
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(LongString::from(dlq.as_str())),
            ),
        ]),
    )
    .await;
    let msgs = [("p1", Some(1)), ("p7", Some(7)), ("p3", Some(3))];
    publish(&conn, &q, &msgs, BasicProperties::default()).await;
    for _ in 0..3 {
        let m = ch
            .basic_get(&q, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
    within("dead letters", async {
        while count(&ch, &dlq).await < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(bodies(&drain(&ch, &dlq).await), vec!["p7", "p3", "p1"]);
    delete(&ch, &q).await;
    delete(&ch, &dlq).await;
}

#[tokio::test]
async fn max_priority_equivalence() {
    let b = broker().await;
    let (_conn, ch) = b.channel().await;
    let q = uniq("prio.equiv");
    declare(&ch, &q, args(vec![max_prio(3)])).await;
    // The same value in another integer type is equivalent.
    declare(
        &ch,
        &q,
        args(vec![("x-max-priority", AMQPValue::ShortInt(3))]),
    )
    .await;
    let cases = [
        (
            args(vec![max_prio(4)]),
            "received '4' but current is '3'".to_string(),
        ),
        (
            FieldTable::default(),
            "received none but current is the value '3' of type 'signedint'".to_string(),
        ),
    ];
    for (a, tail) in cases {
        let (conn, ch) = b.channel().await;
        let (code, text) = expect_amqp_err(
            ch.queue_declare(&q, QueueDeclareOptions::default(), a)
                .await,
        );
        assert_eq!(code, 406);
        assert_eq!(
            text,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{q}' in vhost '/': {tail}"
            )
        );
        let _ = conn.close(200, "ok").await;
    }
    // A plain queue redeclared with the argument.
    let plain = uniq("prio.equiv.plain");
    declare(&ch, &plain, FieldTable::default()).await;
    let (conn2, ch2) = b.channel().await;
    let (code, text) = expect_amqp_err(
        ch2.queue_declare(
            &plain,
            QueueDeclareOptions::default(),
            args(vec![max_prio(3)]),
        )
        .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{plain}' in vhost '/': received the value '3' of type 'signedint' but current is none"
        )
    );
    let _ = conn2.close(200, "ok").await;
    delete(&ch, &q).await;
    delete(&ch, &plain).await;
}

#[tokio::test]
async fn invalid_max_priority_is_refused_with_rabbitmq_texts() {
    let b = broker().await;
    let cases: Vec<(AMQPValue, Option<&str>)> = vec![
        (AMQPValue::LongInt(0), None),
        (AMQPValue::ShortShortUInt(1), None),
        (AMQPValue::LongLongInt(255), None),
        (AMQPValue::LongInt(256), Some("{max_value_exceeded,256}")),
        (
            AMQPValue::LongLongInt(10_000_000_000),
            Some("{max_value_exceeded,10000000000}"),
        ),
        (AMQPValue::LongInt(-1), Some("{value_negative,-1}")),
        (
            AMQPValue::LongString("5".into()),
            Some("\"expected integer, got longstr\""),
        ),
        (
            AMQPValue::Boolean(true),
            Some("\"expected integer, got bool\""),
        ),
        (
            AMQPValue::Double(3.0),
            Some("\"expected integer, got double\""),
        ),
    ];
    for (v, err) in cases {
        let (conn, ch) = b.channel().await;
        let q = uniq("prio.invalid");
        let r = ch
            .queue_declare(
                &q,
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                args(vec![("x-max-priority", v.clone())]),
            )
            .await;
        match err {
            None => assert!(r.is_ok(), "{v:?}: {r:?}"),
            Some(detail) => {
                let (code, text) = expect_amqp_err(r);
                assert_eq!(code, 406, "{v:?}");
                assert_eq!(
                    text,
                    format!(
                        "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {detail}"
                    ),
                    "{v:?}"
                );
            }
        }
        let _ = conn.close(200, "ok").await;
    }
}

/// x-max-priority 0 is accepted and has one lane: FIFO.
#[tokio::test]
async fn max_priority_zero_is_fifo() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.zero");
    declare(&ch, &q, args(vec![max_prio(0)])).await;
    publish(
        &conn,
        &q,
        &[("a0", Some(0)), ("b5", Some(5)), ("c2", Some(2))],
        BasicProperties::default(),
    )
    .await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["a0", "b5", "c2"]);
    delete(&ch, &q).await;
}

/// A durable priority queue's persistent messages come back after a
/// restart in their lanes, in order.
#[tokio::test]
async fn restart_restores_messages_into_their_lanes_in_order() {
    if external_broker() {
        eprintln!("skipped: restarting an external broker is not possible here");
        return;
    }
    let mut node = Node::start(&[]).await;
    let q = uniq("prio.restart");
    let msgs = [
        ("a0", None),
        ("b2", Some(2)),
        ("c1", Some(1)),
        ("d2", Some(2)),
        ("e9", Some(9)),
        ("f0", Some(0)),
    ];
    {
        let b = node.broker();
        let (conn, ch) = b.channel().await;
        ch.queue_declare(
            &q,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args(vec![max_prio(2)]),
        )
        .await
        .unwrap();
        publish(
            &conn,
            &q,
            &msgs,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await;
        // One taken and requeued before the restart keeps its place too.
        let m = ch
            .basic_get(&q, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(m.delivery.data, b"b2");
        conn.close(200, "ok").await.unwrap();
    }
    node.sigterm();
    let st = node.wait_exit(Duration::from_secs(15)).await;
    assert!(st.success(), "exit after SIGTERM: {st:?}");
    node.restart().await;
    let conn = connect_retry(&node.url(), Duration::from_secs(10)).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(count(&ch, &q).await, 6);
    assert_eq!(
        bodies(&drain(&ch, &q).await),
        vec!["b2", "d2", "e9", "c1", "a0", "f0"]
    );
}

/// reject-publish refuses a new message when full, whatever its priority.
#[tokio::test]
async fn max_length_reject_publish_refuses_even_high_priority() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("prio.reject");
    declare(
        &ch,
        &q,
        args(vec![
            max_prio(9),
            ("x-max-length", AMQPValue::LongInt(2)),
            (
                "x-overflow",
                AMQPValue::LongString(LongString::from("reject-publish")),
            ),
        ]),
    )
    .await;
    publish(
        &conn,
        &q,
        &[("a0", Some(0)), ("b5", Some(5))],
        BasicProperties::default(),
    )
    .await;
    let pc = conn.create_channel().await.unwrap();
    pc.confirm_select(Default::default()).await.unwrap();
    let c = pc
        .basic_publish("", &q, Default::default(), b"c9", props(Some(9)))
        .await
        .unwrap();
    assert!(within("confirm", c).await.unwrap().is_nack());
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["b5", "a0"]);
    delete(&ch, &q).await;
}
