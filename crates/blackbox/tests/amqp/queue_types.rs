//! x-queue-type=quorum through lapin: x-delivery-count on the consumer path
//! (one consumer served back to back, several served in turn), and a quorum
//! queue across a restart (its type, arguments and every message kept).
//! Declare rules and their texts are in tests/python/test_queue_types.py.

use std::time::Duration;

use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use lapin::options::*;
use lapin::BasicProperties;

use crate::harness::*;
use crate::node::{connect_retry, Node};

fn quorum_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    for (k, v) in extra {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// `x-delivery-count` of a delivery, if present; it must be a long ('l').
fn delivery_count(d: &lapin::message::Delivery) -> Option<i64> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("x-delivery-count is not a long: {other:?}"),
    }
}

async fn delete(ch: &lapin::Channel, q: &str) {
    ch.queue_delete(q, Default::default()).await.unwrap();
}

#[tokio::test]
async fn delivery_count_lone_consumer_back_to_back() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("qq.lone");
    ch.queue_declare(&q, durable(), quorum_args(&[]))
        .await
        .unwrap();
    publish_confirmed(&conn, "", &q, &["a", "b", "c"]).await;
    let mut c = ch
        .basic_consume(&q, "lone", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let mut last = 0;
    for body in ["a", "b", "c"] {
        let d = next_delivery(&mut c).await;
        assert_eq!(d.data, body.as_bytes());
        assert!(!d.redelivered);
        assert_eq!(delivery_count(&d), None, "first delivery has no count");
        last = d.delivery_tag;
    }
    // One return of all three: they come back, in order, counted once.
    ch.basic_nack(
        last,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    let mut tags = Vec::new();
    for body in ["a", "b", "c"] {
        let d = next_delivery(&mut c).await;
        assert_eq!(d.data, body.as_bytes());
        assert!(d.redelivered);
        assert_eq!(delivery_count(&d), Some(1));
        tags.push(d.delivery_tag);
    }
    for t in tags {
        ch.basic_ack(t, Default::default()).await.unwrap();
    }
    no_delivery(&mut c).await;
    delete(&ch, &q).await;
}

#[tokio::test]
async fn delivery_count_with_two_consumers_and_limit() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("qq.two");
    ch.queue_declare(
        &q,
        durable(),
        quorum_args(&[("x-delivery-limit", AMQPValue::LongInt(1))]),
    )
    .await
    .unwrap();
    ch.basic_qos(1, Default::default()).await.unwrap();
    let mut c1 = ch
        .basic_consume(&q, "c1", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    ch2.basic_qos(1, Default::default()).await.unwrap();
    let mut c2 = ch2
        .basic_consume(&q, "c2", Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish_confirmed(&conn, "", &q, &["m"]).await;
    let d = next_delivery(&mut c1).await;
    assert_eq!(delivery_count(&d), None);
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    // Either consumer may get it back; it carries its count.
    let (d, on) = tokio::select! {
        d = next_delivery(&mut c1) => (d, &ch),
        d = next_delivery(&mut c2) => (d, &ch2),
    };
    assert_eq!(delivery_count(&d), Some(1));
    // The second return passes the limit of 1: dropped (no dead-letter exchange).
    on.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    no_delivery(&mut c1).await;
    no_delivery(&mut c2).await;
    let ok = ch
        .queue_declare(
            &q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(ok.message_count(), 0);
    delete(&ch, &q).await;
}

#[tokio::test]
async fn quorum_queue_survives_restart_with_all_messages() {
    if external_broker() {
        eprintln!("skipped: restarts a warren node it starts itself");
        return;
    }
    let mut node = Node::start(&[]).await;
    let q = uniq("qq.restart");
    let args = quorum_args(&[("x-delivery-limit", AMQPValue::LongInt(1))]);
    {
        let conn = node.broker().connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(&q, durable(), args.clone()).await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        for (body, mode) in [("transient", 1), ("persistent", 2)] {
            let c = ch
                .basic_publish(
                    "",
                    &q,
                    Default::default(),
                    body.as_bytes(),
                    BasicProperties::default().with_delivery_mode(mode),
                )
                .await
                .unwrap();
            assert!(within("confirm", c).await.unwrap().is_ack());
        }
        node.sigterm();
        node.wait_exit(Duration::from_secs(15)).await;
    }
    node.restart().await;
    let conn = connect_retry(&node.url(), Duration::from_secs(15)).await;
    let ch = conn.create_channel().await.unwrap();
    // Still a quorum queue with its arguments.
    ch.queue_declare(&q, durable(), args.clone()).await.unwrap();
    let e = expect_amqp_err(ch.queue_declare(&q, durable(), FieldTable::default()).await);
    assert_eq!(
        e,
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': \
                 received none but current is the value 'quorum' of type 'longstr'"
            )
        )
    );
    let ch = conn.create_channel().await.unwrap();
    // Quorum queues keep every message, whatever its delivery mode.
    let mut bodies = Vec::new();
    while let Some(m) = ch
        .basic_get(&q, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        assert_eq!(delivery_count(&m.delivery), Some(0));
        bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    assert_eq!(bodies, ["transient", "persistent"]);
}
