//! Queue declaration, properties, bindings, purge and delete.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ExchangeKind};

use crate::exchanges::{declare_ex, drain, publish, temp_queue};
use crate::harness::*;

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// Passive-declare on a fresh channel: Some((messages, consumers)) or None on 404.
pub async fn queue_state(conn: &Connection, q: &str) -> Option<(u32, u32)> {
    let ch = conn.create_channel().await.unwrap();
    match ch.queue_declare(q, passive(), FieldTable::default()).await {
        Ok(ok) => {
            ch.close(200, "ok").await.unwrap();
            Some((ok.message_count(), ok.consumer_count()))
        }
        Err(e) => {
            assert_eq!(amqp_err(&e).0, 404, "{e}");
            None
        }
    }
}

fn max_len(n: i32) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-max-length".into(), AMQPValue::LongInt(n));
    t
}

#[tokio::test]
async fn server_named_queue() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    assert!(q1.starts_with("amq.gen-"), "{q1}");
    assert!(q2.starts_with("amq.gen-"), "{q2}");
    assert_ne!(q1, q2);
    publish(&ch, "", &q1, "x").await;
    assert_eq!(drain(&ch, &q1).await, vec!["x"]);
    // A non-passive declare naming an amq.* queue is refused, even for the
    // server-generated name; passive works.
    ch.queue_declare(
        &q1,
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let (code, text) = expect_amqp_err(
        ch.queue_declare(
            &q1,
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - queue name '{q1}' contains reserved prefix 'amq.*'")
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn passive_declare() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("passive");
    let (code, text) =
        expect_amqp_err(ch.queue_declare(&q, passive(), FieldTable::default()).await);
    assert_eq!(code, 404);
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_confirmed(&conn, "", &q, &["1"]).await;
    // Passive ignores other flags/arguments.
    let ok = ch
        .queue_declare(
            &q,
            QueueDeclareOptions {
                passive: true,
                durable: true,
                exclusive: true,
                ..Default::default()
            },
            max_len(1),
        )
        .await
        .unwrap();
    assert_eq!(ok.name().as_str(), q);
    assert_eq!((ok.message_count(), ok.consumer_count()), (1, 0));
    ch.queue_delete(&q, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn durable_queue_equivalence() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("durable");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(&q, durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare(&q, durable, FieldTable::default())
        .await
        .unwrap();
    let (code, text) = expect_amqp_err(
        ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'false' but current is 'true'")
    );
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(&q, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn exclusive_queue_locked_and_deleted_on_close() {
    let b = broker().await;
    let owner = b.connect().await;
    let other = b.connect().await;
    let q = uniq("excl");
    let och = owner.create_channel().await.unwrap();
    och.queue_declare(
        &q,
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Owner can use it from another channel.
    let och2 = owner.create_channel().await.unwrap();
    och2.queue_declare(&q, passive(), FieldTable::default())
        .await
        .unwrap();
    let expected = format!("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.");
    for attempt in 0..3 {
        let ch = other.create_channel().await.unwrap();
        let r = match attempt {
            0 => ch
                .queue_declare(
                    &q,
                    QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|_| ()),
            1 => ch
                .queue_declare(&q, passive(), FieldTable::default())
                .await
                .map(|_| ()),
            _ => ch
                .basic_consume(&q, "", Default::default(), FieldTable::default())
                .await
                .map(|_| ()),
        };
        let (code, text) = expect_amqp_err(r);
        assert_eq!(code, 405, "attempt {attempt}");
        assert_eq!(text, expected, "attempt {attempt}");
    }
    assert!(other.status().connected());
    owner.close(200, "bye").await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if queue_state(&other, &q).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "exclusive queue must be deleted when its connection closes"
    );
    other.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn auto_delete_when_last_consumer_cancels() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("autodel");
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Never consumed: not deleted.
    assert_eq!(queue_state(&conn, &q).await, Some((0, 0)));
    let c1 = ch
        .basic_consume(&q, "c1", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let c2 = ch
        .basic_consume(&q, "c2", Default::default(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(queue_state(&conn, &q).await, Some((0, 2)));
    ch.basic_cancel(c1.tag().as_str(), Default::default())
        .await
        .unwrap();
    assert_eq!(queue_state(&conn, &q).await, Some((0, 1)));
    ch.basic_cancel(c2.tag().as_str(), Default::default())
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if queue_state(&conn, &q).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "auto-delete queue must go when its last consumer cancels"
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn arguments_equivalence() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("args");
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare(&q, opts, max_len(10)).await.unwrap();
    ch.queue_declare(&q, opts, max_len(10)).await.unwrap();
    let (code, text) = expect_amqp_err(ch.queue_declare(&q, opts, max_len(20)).await);
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received '20' but current is '10'")
    );
    // x-max-length is enforced (drop-head by default).
    let ch = conn.create_channel().await.unwrap();
    let bodies: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    publish_confirmed(&conn, "", &q, &bodies).await;
    let ok = ch
        .queue_declare(&q, passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(ok.message_count(), 10);
    assert_eq!(drain(&ch, &q).await.first().map(String::as_str), Some("2"));
    ch.queue_delete(&q, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn declare_ok_counts() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("counts");
    ch.queue_declare(&q, Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish_confirmed(&conn, "", &q, &["0", "1", "2"]).await;
    let ok = ch
        .queue_declare(&q, Default::default(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!((ok.message_count(), ok.consumer_count()), (3, 0));
    let cch = conn.create_channel().await.unwrap();
    cch.basic_qos(1, Default::default()).await.unwrap();
    let mut c = cch
        .basic_consume(&q, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let d = next_delivery(&mut c).await;
    assert_eq!(d.data, b"0");
    // Ready messages only: the unacked one is not counted.
    let ok = ch
        .queue_declare(&q, passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!((ok.message_count(), ok.consumer_count()), (2, 1));
    ch.queue_delete(&q, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn bind_unbind_with_arguments() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("bindargs");
    declare_ex(&ch, &ex, ExchangeKind::Direct).await;
    let q = temp_queue(&ch).await;
    let mut a1 = FieldTable::default();
    a1.insert("tag".into(), AMQPValue::LongInt(1));
    let mut a2 = FieldTable::default();
    a2.insert("tag".into(), AMQPValue::LongInt(2));
    ch.queue_bind(&q, &ex, "k", Default::default(), a1.clone())
        .await
        .unwrap();
    ch.queue_bind(&q, &ex, "k", Default::default(), a2.clone())
        .await
        .unwrap();
    // Re-binding identically is idempotent.
    ch.queue_bind(&q, &ex, "k", Default::default(), a1.clone())
        .await
        .unwrap();
    publish(&ch, &ex, "k", "once").await;
    assert_eq!(drain(&ch, &q).await, vec!["once"], "one copy per queue");
    // Unbind must match the arguments: unbinding a1 leaves a2.
    ch.queue_unbind(&q, &ex, "k", a1).await.unwrap();
    publish(&ch, &ex, "k", "still").await;
    assert_eq!(drain(&ch, &q).await, vec!["still"]);
    // Unbinding a binding that does not exist is not an error.
    ch.queue_unbind(&q, &ex, "k", FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &ex, "k", "still2").await;
    assert_eq!(drain(&ch, &q).await, vec!["still2"]);
    ch.queue_unbind(&q, &ex, "k", a2).await.unwrap();
    // The queue was the exchange's last binding: auto-delete exchange is gone.
    ch.queue_declare(&q, passive(), FieldTable::default())
        .await
        .unwrap();
    // Bind to a missing exchange: 404.
    let missing = uniq("nox");
    let (code, text) = expect_amqp_err(
        ch.queue_bind(&q, &missing, "k", Default::default(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 404);
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn purge_returns_count() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["0", "1", "2", "3", "4", "5", "6"]).await;
    let n = ch.queue_purge(&q, Default::default()).await.unwrap();
    assert_eq!(n, 7);
    let n = ch.queue_purge(&q, Default::default()).await.unwrap();
    assert_eq!(n, 0);
    assert!(drain(&ch, &q).await.is_empty());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn delete_if_unused_and_if_empty() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["m"]).await;
    let (code, text) = expect_amqp_err(
        ch.queue_delete(
            &q,
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
    );

    let ch = conn.create_channel().await.unwrap();
    let cch = conn.create_channel().await.unwrap();
    let _c = cch
        .basic_consume(&q, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let (code, text) = expect_amqp_err(
        ch.queue_delete(
            &q,
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn delete_returns_message_count() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("delcount");
    ch.queue_declare(&q, Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish_confirmed(&conn, "", &q, &["0", "1", "2", "3"]).await;
    let n = ch.queue_delete(&q, Default::default()).await.unwrap();
    assert_eq!(n, 4);
    assert_eq!(queue_state(&conn, &q).await, None);
    // Deleting a missing queue is ok and reports 0.
    let n = ch.queue_delete(&q, Default::default()).await.unwrap();
    assert_eq!(n, 0);
    conn.close(200, "bye").await.unwrap();
}
