//! Runs of publishes that arrive in one socket read, with a topology or
//! mode change in the middle: the broker reuses one publish's routing for
//! the next ones in a run (`publish_cache.rs`) and defers dispatch, and
//! neither may carry over a change made by the frame in between.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, confirm, queue, AMQPClass};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::ExchangeKind;

use crate::exchanges::{declare_ex, drain};
use crate::harness::*;
use crate::raw::*;

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn unbind_between_publishes_in_one_read_takes_effect() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("run-ex");
    let q = uniq("run-q");
    declare_ex(&ch, &ex, ExchangeKind::Direct).await;
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        &q,
        &ex,
        "k",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    let mut frames: Vec<AMQPFrame> = Vec::new();
    for body in bodies("before-", 5) {
        frames.extend(publish_frames(1, &ex, "k", body.as_bytes()));
    }
    frames.push(AMQPFrame::Method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: ss(&q),
            exchange: ss(&ex),
            routing_key: ss("k"),
            arguments: Default::default(),
        })),
    ));
    for body in bodies("after-", 5) {
        frames.extend(publish_frames(1, &ex, "k", body.as_bytes()));
    }
    raw.send_batch(&frames).await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Queue(queue::AMQPMethod::UnbindOk(_))) => {}
        other => panic!("expected queue.unbind-ok, got {other:?}"),
    }
    raw.close().await;
    assert_eq!(drain(&ch, &q).await, bodies("before-", 5));
    ch.queue_delete(&q, QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn queue_recreated_between_publishes_in_one_read_gets_only_later_ones() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("run-del");
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    let declare = AMQPFrame::Method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: ss(&q),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        })),
    );
    let delete = AMQPFrame::Method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: ss(&q),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    );
    let mut frames: Vec<AMQPFrame> = Vec::new();
    for body in bodies("first-", 3) {
        frames.extend(publish_frames(1, "", &q, body.as_bytes()));
    }
    frames.push(delete);
    for body in bodies("lost-", 3) {
        frames.extend(publish_frames(1, "", &q, body.as_bytes()));
    }
    frames.push(declare);
    for body in bodies("second-", 3) {
        frames.extend(publish_frames(1, "", &q, body.as_bytes()));
    }
    raw.send_batch(&frames).await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(d))) => assert_eq!(d.message_count, 3),
        other => panic!("expected queue.delete-ok, got {other:?}"),
    }
    match raw.recv_method(1).await {
        Some(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))) => {}
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    raw.close().await;
    assert_eq!(drain(&ch, &q).await, bodies("second-", 3));
    ch.queue_delete(&q, QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn confirm_select_between_publishes_in_one_read_confirms_the_later_ones() {
    let b = broker().await;
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    let q = uniq("run-confirm");
    let mut frames: Vec<AMQPFrame> = Vec::new();
    for body in bodies("plain-", 4) {
        frames.extend(publish_frames(1, "", &q, body.as_bytes()));
    }
    frames.push(AMQPFrame::Method(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    ));
    for body in bodies("confirmed-", 3) {
        frames.extend(publish_frames(1, "", &q, body.as_bytes()));
    }
    raw.send_batch(&frames).await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected confirm.select-ok, got {other:?}"),
    }
    // Tags count from confirm.select: exactly 1..=3 get acked.
    let mut confirmed = 0;
    while confirmed < 3 {
        match raw.recv().await {
            Some(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
                assert!(a.delivery_tag <= 3 && a.delivery_tag > confirmed);
                confirmed = a.delivery_tag;
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    raw.close().await;
}
