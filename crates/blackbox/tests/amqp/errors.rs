//! Error scoping and exact close frames.

use amq_protocol::protocol::{basic, exchange, queue, AMQPClass};
use amq_protocol::types::FieldTable as RawTable;
use lapin::options::*;
use lapin::types::FieldTable;

use crate::exchanges::{drain, publish, temp_queue};
use crate::harness::*;
use crate::raw::*;

#[tokio::test]
async fn channel_error_closes_only_that_channel() {
    let b = broker().await;
    let conn = b.connect().await;
    let good = conn.create_channel().await.unwrap();
    let bad = conn.create_channel().await.unwrap();
    let q = temp_queue(&good).await;
    let (code, _) = expect_amqp_err(
        bad.queue_declare(
            &uniq("missing"),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 404);
    assert!(!bad.status().connected());
    assert!(conn.status().connected());
    assert!(good.status().connected());
    publish(&good, "", &q, "still works").await;
    assert_eq!(drain(&good, &q).await, vec!["still works"]);
    let fresh = conn.create_channel().await.unwrap();
    publish(&fresh, "", &q, "new channel").await;
    assert_eq!(drain(&fresh, &q).await, vec!["new channel"]);
    conn.close(200, "bye").await.unwrap();
}

fn qdecl(name: &str, passive: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: ss(name),
        passive,
        durable: false,
        exclusive: false,
        auto_delete: true,
        nowait: false,
        arguments: RawTable::default(),
    }))
}

#[tokio::test]
async fn exact_channel_close_frames() {
    let b = broker().await;
    let mut raw = Raw::connect(&b).await;
    let missing = uniq("missing");

    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.send(1, qdecl(&missing, true)).await;
    let c = raw.expect_channel_close(1).await;
    assert_eq!(
        cc(&c),
        (
            404,
            format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
            50,
            10
        )
    );

    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: ss(&missing),
            kind: ss("direct"),
            passive: true,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: RawTable::default(),
        })),
    )
    .await;
    let c = raw.expect_channel_close(1).await;
    assert_eq!(
        cc(&c),
        (
            404,
            format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
            40,
            10
        )
    );

    raw.open_channel(1).await;
    raw.consume(1, &missing, "", false).await;
    let c = raw.expect_channel_close(1).await;
    assert_eq!(
        cc(&c),
        (
            404,
            format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
            60,
            20
        )
    );

    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 42,
            multiple: false,
        })),
    )
    .await;
    let c = raw.expect_channel_close(1).await;
    assert_eq!(
        cc(&c),
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 42".to_string(),
            60,
            80
        )
    );

    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: ss(&missing),
            routing_key: ss(""),
            mandatory: false,
            immediate: false,
        })),
    )
    .await;
    raw.send_content(1, b"x").await;
    let c = raw.expect_channel_close(1).await;
    assert_eq!(
        cc(&c),
        (
            404,
            format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
            60,
            40
        )
    );

    // Channel 2 was never affected.
    let q = uniq("raw-ok");
    raw.send(2, qdecl(&q, false)).await;
    match raw.recv_method(2).await {
        Some(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
            assert_eq!(ok.queue.as_str(), q);
            assert_eq!((ok.message_count, ok.consumer_count), (0, 0));
        }
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    raw.send(
        2,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: ss(&q),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    )
    .await;
    match raw.recv_method(2).await {
        Some(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok))) => assert_eq!(ok.message_count, 0),
        other => panic!("expected queue.delete-ok, got {other:?}"),
    }
    raw.close().await;
}

#[tokio::test]
async fn exact_connection_close_frames() {
    let b = broker().await;
    // Duplicate consumer tag → 530 connection error.
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    let q = uniq("dupq");
    raw.send(1, qdecl(&q, false)).await;
    raw.recv_method(1).await.expect("declare-ok");
    raw.consume(1, &q, "tag", false).await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok))) => {
            assert_eq!(ok.consumer_tag.as_str(), "tag")
        }
        other => panic!("expected consume-ok, got {other:?}"),
    }
    raw.consume(1, &q, "tag", false).await;
    let c = raw.expect_connection_close().await;
    assert_eq!(
        conn_cc(&c),
        (
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'tag'".to_string(),
            60,
            20
        )
    );

    // A method on a channel that was never opened → 504 CHANNEL_ERROR.
    let mut raw = Raw::connect(&b).await;
    raw.send(7, qdecl(&uniq("x"), false)).await;
    let c = raw.expect_connection_close().await;
    let (code, text, class, method) = conn_cc(&c);
    assert_eq!(code, 504, "{text}");
    assert!(
        text.starts_with("CHANNEL_ERROR - expected 'channel.open'"),
        "{text}"
    );
    assert_eq!((class, method), (50, 10));

    // Unknown exchange type → 503 COMMAND_INVALID connection error.
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: ss(&uniq("badtype")),
            kind: ss("no-such-type"),
            passive: false,
            durable: false,
            auto_delete: true,
            internal: false,
            nowait: false,
            arguments: RawTable::default(),
        })),
    )
    .await;
    let c = raw.expect_connection_close().await;
    assert_eq!(
        conn_cc(&c),
        (
            503,
            "COMMAND_INVALID - unknown exchange type 'no-such-type'".to_string(),
            40,
            10
        )
    );
    // Clean up the queue on a fresh connection.
    let (conn, ch) = b.channel().await;
    ch.queue_delete(&q, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn connection_error_does_not_affect_other_connections() {
    let b = broker().await;
    let victim = b.connect().await;
    let bystander = b.connect().await;
    let bch = bystander.create_channel().await.unwrap();
    let q = temp_queue(&bch).await;
    let vch = victim.create_channel().await.unwrap();
    let vq = temp_queue(&vch).await;
    vch.basic_consume(&vq, "same", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let (code, _) = expect_amqp_err(
        vch.basic_consume(&vq, "same", Default::default(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 530);
    within("victim connection to close", async {
        while victim.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(bystander.status().connected());
    assert!(bch.status().connected());
    publish(&bch, "", &q, "fine").await;
    assert_eq!(drain(&bch, &q).await, vec!["fine"]);
    bystander.close(200, "bye").await.unwrap();
}
