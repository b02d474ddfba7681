//! Publisher confirms and transactions.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, confirm, AMQPClass};
use lapin::publisher_confirm::Confirmation;
use lapin::BasicProperties;

use crate::exchanges::{drain, publish, temp_queue};
use crate::harness::*;
use crate::queues::queue_state;
use crate::raw::*;

#[tokio::test]
async fn confirms_all_acked() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    ch.confirm_select(Default::default()).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(
            ch.basic_publish(
                "",
                &q,
                Default::default(),
                format!("{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
    }
    for p in pending {
        assert_eq!(within("confirm", p).await.unwrap(), Confirmation::Ack(None));
    }
    assert!(within("wait_for_confirms", ch.wait_for_confirms())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queue_state(&conn, &q).await, Some((200, 0)));
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn confirm_delivery_tags_are_sequential() {
    let b = broker().await;
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected confirm.select-ok, got {other:?}"),
    }
    let q = uniq("rawconfirm");
    // Unroutable publishes (no such queue) are confirmed too.
    const N: u64 = 50;
    for _ in 0..N {
        raw.send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: ss(""),
                routing_key: ss(&q),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        raw.send_content(1, b"x").await;
    }
    let mut confirmed = 0u64;
    while confirmed < N {
        match raw.recv().await {
            Some(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
                assert!(a.delivery_tag > confirmed, "tags must increase");
                assert!(a.delivery_tag <= N);
                if !a.multiple {
                    assert_eq!(a.delivery_tag, confirmed + 1, "single ack must be next tag");
                }
                confirmed = a.delivery_tag;
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    raw.close().await;
}

#[tokio::test]
async fn tx_commit_and_rollback_publishes() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    let tx = conn.create_channel().await.unwrap();
    tx.tx_select().await.unwrap();
    publish(&tx, "", &q, "r1").await;
    publish(&tx, "", &q, "r2").await;
    tx.tx_rollback().await.unwrap();
    assert!(
        drain(&ch, &q).await.is_empty(),
        "rolled back publishes vanish"
    );
    publish(&tx, "", &q, "c1").await;
    publish(&tx, "", &q, "c2").await;
    // Not visible before commit.
    assert!(drain(&ch, &q).await.is_empty());
    tx.tx_commit().await.unwrap();
    assert_eq!(queue_state(&conn, &q).await, Some((2, 0)));
    assert_eq!(drain(&ch, &q).await, vec!["c1", "c2"]);
    // Empty commit/rollback are fine.
    tx.tx_commit().await.unwrap();
    tx.tx_rollback().await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn tx_commit_and_rollback_acks() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["m1", "m2"]).await;
    let tx = conn.create_channel().await.unwrap();
    tx.tx_select().await.unwrap();
    let m = tx.basic_get(&q, Default::default()).await.unwrap().unwrap();
    tx.basic_ack(m.delivery.delivery_tag, Default::default())
        .await
        .unwrap();
    tx.tx_rollback().await.unwrap();
    // The ack was discarded: the message is still unacked, so closing the
    // channel requeues it.
    assert_eq!(queue_state(&conn, &q).await, Some((1, 0)));
    tx.close(200, "bye").await.unwrap();
    assert_eq!(queue_state(&conn, &q).await, Some((2, 0)));

    let tx = conn.create_channel().await.unwrap();
    tx.tx_select().await.unwrap();
    let m = tx.basic_get(&q, Default::default()).await.unwrap().unwrap();
    assert_eq!(m.delivery.data, b"m1");
    assert!(m.delivery.redelivered);
    tx.basic_ack(m.delivery.delivery_tag, Default::default())
        .await
        .unwrap();
    tx.tx_commit().await.unwrap();
    tx.close(200, "bye").await.unwrap();
    assert_eq!(queue_state(&conn, &q).await, Some((1, 0)));
    assert_eq!(drain(&ch, &q).await, vec!["m2"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn tx_and_confirm_are_exclusive() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    ch.tx_select().await.unwrap();
    let (code, text) = expect_amqp_err(ch.confirm_select(Default::default()).await);
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    );
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let (code, text) = expect_amqp_err(ch.tx_select().await);
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    );
    // commit without select
    let ch = conn.create_channel().await.unwrap();
    let (code, text) = expect_amqp_err(ch.tx_commit().await);
    assert_eq!(code, 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    conn.close(200, "bye").await.unwrap();
}
