//! basic.* : publish/return, properties, consume/cancel, get, ack/nack/reject,
//! recover, qos, redelivery and ordering.

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Consumer};

use crate::exchanges::{drain, publish, temp_queue};
use crate::harness::*;
use crate::queues::queue_state;

fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).unwrap()
}

async fn consume(ch: &Channel, q: &str, tag: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        q,
        tag,
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

/// Collect deliveries until none arrives within the quiet window.
async fn collect(c: &mut Consumer) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(QUIET, c.next()).await {
        out.push(d.unwrap());
    }
    out
}

#[tokio::test]
async fn mandatory_unroutable_is_returned() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    ch.confirm_select(Default::default()).await.unwrap();
    let key = uniq("nowhere");
    let confirm = ch
        .basic_publish(
            "",
            &key,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default().with_message_id("m1".into()),
        )
        .await
        .unwrap();
    match within("confirm", confirm).await.unwrap() {
        Confirmation::Ack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312);
            assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(ret.delivery.exchange.as_str(), "");
            assert_eq!(ret.delivery.routing_key.as_str(), key);
            assert_eq!(ret.delivery.data, b"lost");
            assert_eq!(
                ret.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.as_str()),
                Some("m1")
            );
        }
        other => panic!("expected ack with returned message, got {other:?}"),
    }
    // Routable mandatory publish: plain ack, no return.
    let q = temp_queue(&ch).await;
    let confirm = ch
        .basic_publish(
            "",
            &q,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"ok",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );
    // Non-mandatory unroutable: silently dropped, still acked.
    let confirm = ch
        .basic_publish(
            "",
            &key,
            Default::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );
    conn.close(200, "bye").await.unwrap();
}

fn rich_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    nested.insert("n".into(), AMQPValue::LongInt(-7));
    let mut deeper = FieldTable::default();
    deeper.insert("k".into(), AMQPValue::Boolean(false));
    nested.insert("t".into(), AMQPValue::FieldTable(deeper));
    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        AMQPValue::LongString("two".into()),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(true)])),
        AMQPValue::FieldTable(nested.clone()),
        AMQPValue::Void,
    ]);
    let mut h = FieldTable::default();
    let entries: Vec<(&str, AMQPValue)> = vec![
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-320000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-64_000_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "dec",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        (
            "str",
            AMQPValue::LongString(LongString::from("héllo wörld")),
        ),
        ("array", AMQPValue::FieldArray(array)),
        ("ts", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255])),
        ),
        ("void", AMQPValue::Void),
    ];
    for (k, v) in entries {
        h.insert(k.into(), v);
    }
    h
}

#[tokio::test]
async fn all_properties_round_trip() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(rich_headers())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("reply.q".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_650_000_000)
        .with_type("my.type".into())
        .with_user_id("guest".into())
        .with_app_id("blackbox".into())
        .with_cluster_id("cluster-x".into());
    ch.basic_publish("", &q, Default::default(), b"props", props.clone())
        .await
        .unwrap();
    let mut c = consume(&ch, &q, "", true).await;
    let d = next_delivery(&mut c).await;
    assert_eq!(d.data, b"props");
    let got = &d.properties;
    assert_eq!(got.content_type(), props.content_type());
    assert_eq!(got.content_encoding(), props.content_encoding());
    assert_eq!(got.delivery_mode(), &Some(2));
    assert_eq!(got.priority(), &Some(7));
    assert_eq!(got.correlation_id(), props.correlation_id());
    assert_eq!(got.reply_to(), props.reply_to());
    assert_eq!(got.expiration(), props.expiration());
    assert_eq!(got.message_id(), props.message_id());
    assert_eq!(got.timestamp(), &Some(1_650_000_000));
    assert_eq!(got.kind(), props.kind());
    assert_eq!(got.user_id(), props.user_id());
    assert_eq!(got.app_id(), props.app_id());
    assert_eq!(got.cluster_id(), props.cluster_id());
    let want = rich_headers();
    let have = got.headers().clone().expect("headers");
    for (k, v) in want.inner() {
        assert_eq!(have.inner().get(k), Some(v), "header {k}");
    }
    assert_eq!(have.inner().len(), want.inner().len());
    // Empty properties stay empty.
    ch.basic_publish("", &q, Default::default(), b"", BasicProperties::default())
        .await
        .unwrap();
    let d = next_delivery(&mut c).await;
    assert!(d.data.is_empty());
    assert_eq!(d.properties, BasicProperties::default());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn user_id_must_match_authenticated_user() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let seen = watch_errors(&ch);
    ch.basic_publish(
        "",
        &q,
        Default::default(),
        b"x",
        BasicProperties::default().with_user_id("mallory".into()),
    )
    .await
    .unwrap();
    let (code, text) = async_channel_error(&seen).await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn large_body_round_trips() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let payload: Vec<u8> = (0..(1024 * 1024 + 17))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    ch.basic_publish(
        "",
        &q,
        Default::default(),
        &payload,
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut c = consume(&ch, &q, "", true).await;
    let d = next_delivery(&mut c).await;
    assert_eq!(d.data.len(), payload.len());
    assert!(d.data == payload, "1 MiB body corrupted");
    // And via basic.get.
    ch.basic_publish(
        "",
        &q,
        Default::default(),
        &payload,
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    ch.basic_cancel(c.tag().as_str(), Default::default())
        .await
        .unwrap();
    let _ = ch2;
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn consumer_tags_generated_and_given() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let c1 = consume(&ch, &q, "", false).await;
    assert!(c1.tag().as_str().starts_with("amq.ctag-"), "{}", c1.tag());
    let c2 = consume(&ch, &q, "", false).await;
    assert_ne!(c1.tag(), c2.tag());
    let mine = uniq("ctag");
    let c3 = consume(&ch, &q, &mine, false).await;
    assert_eq!(c3.tag().as_str(), mine);
    assert_eq!(queue_state(&conn, &q).await, Some((0, 3)));
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn duplicate_consumer_tag_is_connection_error() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let _c = consume(&ch, &q, "dup", false).await;
    let (code, text) = expect_amqp_err(
        ch.basic_consume(&q, "dup", Default::default(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 530);
    assert_eq!(text, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'");
    within("connection to close", async {
        while conn.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn exclusive_consumer_rules() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let _c = consume(&ch, &q, "", false).await;
    let ch2 = conn.create_channel().await.unwrap();
    let (code, text) = expect_amqp_err(
        ch2.basic_consume(
            &q,
            "",
            BasicConsumeOptions {
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
        format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
    );
    // Exclusive consumer first: any further consumer is refused.
    let q2 = temp_queue(&ch).await;
    let _x = ch
        .basic_consume(
            &q2,
            "",
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ch3 = conn.create_channel().await.unwrap();
    let (code, text) = expect_amqp_err(
        ch3.basic_consume(&q2, "", Default::default(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - queue '{q2}' in vhost '/' in exclusive use")
    );
    assert!(ch.status().connected());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn no_ack_consume_and_cancel() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let mut c = consume(&ch, &q, "", true).await;
    publish(&ch, "", &q, "a").await;
    publish(&ch, "", &q, "b").await;
    let d1 = next_delivery(&mut c).await;
    let d2 = next_delivery(&mut c).await;
    assert_eq!((body(&d1), body(&d2)), ("a".into(), "b".into()));
    assert_eq!((d1.delivery_tag, d2.delivery_tag), (1, 2));
    assert!(!d1.redelivered);
    ch.basic_cancel(c.tag().as_str(), Default::default())
        .await
        .unwrap();
    // After cancel-ok the stream ends and new messages stay in the queue.
    assert!(within("stream end", c.next()).await.is_none());
    publish(&ch, "", &q, "c").await;
    assert_eq!(drain(&ch, &q).await, vec!["c"]);
    // Nothing left unacked: a no-ack delivery cannot be acked (unknown tag).
    assert_eq!(queue_state(&conn, &q).await, Some((0, 0)));
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn server_cancel_when_queue_deleted() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("cancelnotify");
    ch.queue_declare(&q, Default::default(), FieldTable::default())
        .await
        .unwrap();
    let mut c = consume(&ch, &q, "", false).await;
    let other = conn.create_channel().await.unwrap();
    other.queue_delete(&q, Default::default()).await.unwrap();
    // lapin ends the consumer stream when it receives basic.cancel.
    assert!(
        within("server basic.cancel", c.next()).await.is_none(),
        "consumer stream must end on server-sent basic.cancel"
    );
    // The channel itself stays open.
    assert!(ch.status().connected());
    let q2 = temp_queue(&ch).await;
    publish(&ch, "", &q2, "alive").await;
    assert_eq!(drain(&ch, &q2).await, vec!["alive"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn get_ok_and_get_empty() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    assert!(ch
        .basic_get(&q, Default::default())
        .await
        .unwrap()
        .is_none());
    publish_confirmed(&conn, "", &q, &["1", "2", "3"]).await;
    for (i, expect_remaining) in [(1u64, 2u32), (2, 1), (3, 0)] {
        let m = ch
            .basic_get(&q, Default::default())
            .await
            .unwrap()
            .expect("get-ok");
        assert_eq!(m.message_count, expect_remaining);
        assert_eq!(m.delivery.delivery_tag, i);
        assert_eq!(m.delivery.data, i.to_string().as_bytes());
        assert!(!m.delivery.redelivered);
        assert_eq!(m.delivery.routing_key.as_str(), q);
    }
    assert!(ch
        .basic_get(&q, Default::default())
        .await
        .unwrap()
        .is_none());
    // Unacked gets are requeued when the channel closes.
    ch.close(200, "bye").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let m = ch.basic_get(&q, Default::default()).await.unwrap().unwrap();
    assert!(m.delivery.redelivered);
    assert_eq!(m.delivery.data, b"1");
    assert_eq!(m.message_count, 2);
    conn.close(200, "bye").await.unwrap();
}

async fn get(ch: &Channel, q: &str) -> (u64, String, bool) {
    let m = ch
        .basic_get(q, Default::default())
        .await
        .unwrap()
        .expect("get-ok");
    (
        m.delivery.delivery_tag,
        String::from_utf8(m.delivery.data.clone()).unwrap(),
        m.delivery.redelivered,
    )
}

#[tokio::test]
async fn ack_nack_reject_multiple_and_requeue() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["1", "2", "3", "4", "5", "6", "7"]).await;
    let mut tags = Vec::new();
    for i in 1..=7 {
        let (tag, body, _) = get(&ch, &q).await;
        assert_eq!(body, i.to_string());
        tags.push(tag);
    }
    // ack multiple up to 3 → 1,2,3 gone
    ch.basic_ack(tags[2], BasicAckOptions { multiple: true })
        .await
        .unwrap();
    // nack multiple up to 5 with requeue → 4,5 back
    ch.basic_nack(
        tags[4],
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    // reject 6 without requeue → dropped
    ch.basic_reject(tags[5], BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    // nack 7 single without requeue → dropped
    ch.basic_nack(
        tags[6],
        BasicNackOptions {
            multiple: false,
            requeue: false,
        },
    )
    .await
    .unwrap();
    let (t4, b4, r4) = get(&ch, &q).await;
    let (t5, b5, r5) = get(&ch, &q).await;
    assert_eq!((b4.as_str(), r4, b5.as_str(), r5), ("4", true, "5", true));
    assert_eq!((t4, t5), (8, 9), "delivery tags keep increasing");
    assert!(ch
        .basic_get(&q, Default::default())
        .await
        .unwrap()
        .is_none());
    // reject with requeue → back again
    ch.basic_reject(t4, BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    ch.basic_ack(t5, Default::default()).await.unwrap();
    let (_, b, r) = get(&ch, &q).await;
    assert_eq!((b.as_str(), r), ("4", true));
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn ack_unknown_tag_is_406() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let seen = watch_errors(&ch);
    ch.basic_ack(999, Default::default()).await.unwrap();
    let (code, text) = async_channel_error(&seen).await;
    assert_eq!(code, 406);
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 999");
    assert!(conn.status().connected());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn double_ack_is_406() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, "x").await;
    let (tag, _, _) = get(&ch, &q).await;
    ch.basic_ack(tag, Default::default()).await.unwrap();
    let seen = watch_errors(&ch);
    ch.basic_ack(tag, Default::default()).await.unwrap();
    let (code, text) = async_channel_error(&seen).await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn recover_requeues_and_redelivers() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let mut c = consume(&ch, &q, "", false).await;
    publish(&ch, "", &q, "a").await;
    publish(&ch, "", &q, "b").await;
    let d1 = next_delivery(&mut c).await;
    let d2 = next_delivery(&mut c).await;
    assert!(!d1.redelivered && !d2.redelivered);
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let r1 = next_delivery(&mut c).await;
    let r2 = next_delivery(&mut c).await;
    assert_eq!((body(&r1), body(&r2)), ("a".into(), "b".into()));
    assert!(r1.redelivered && r2.redelivered);
    assert!(r1.delivery_tag > d2.delivery_tag);
    r2.ack(BasicAckOptions { multiple: true }).await.unwrap();
    no_delivery(&mut c).await;
    assert_eq!(queue_state(&conn, &q).await, Some((0, 1)));
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn prefetch_count_per_consumer() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["1", "2", "3", "4", "5"]).await;
    ch.basic_qos(2, Default::default()).await.unwrap();
    let mut c = consume(&ch, &q, "", false).await;
    let got = collect(&mut c).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["1", "2"]);
    got[0].ack(Default::default()).await.unwrap();
    let more = collect(&mut c).await;
    assert_eq!(more.iter().map(body).collect::<Vec<_>>(), vec!["3"]);
    // ack multiple frees two slots
    more[0]
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    let more = collect(&mut c).await;
    assert_eq!(more.iter().map(body).collect::<Vec<_>>(), vec!["4", "5"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn qos_global_is_per_channel() {
    let b = broker().await;
    let conn = b.connect().await;
    // global=false: limit applies to each consumer separately.
    // global=true: limit shared by all consumers on the channel.
    for (global, expected_total) in [(false, 4usize), (true, 3usize)] {
        let ch = conn.create_channel().await.unwrap();
        let q1 = temp_queue(&ch).await;
        let q2 = temp_queue(&ch).await;
        publish_confirmed(&conn, "", &q1, &["a", "b", "c", "d", "e"]).await;
        publish_confirmed(&conn, "", &q2, &["a", "b", "c", "d", "e"]).await;
        let prefetch = if global { 3 } else { 2 };
        ch.basic_qos(prefetch, BasicQosOptions { global })
            .await
            .unwrap();
        let mut c1 = consume(&ch, &q1, "", false).await;
        let mut c2 = consume(&ch, &q2, "", false).await;
        let n1 = collect(&mut c1).await.len();
        let n2 = collect(&mut c2).await.len();
        assert_eq!(n1 + n2, expected_total, "global={global}: {n1}+{n2}");
        if !global {
            assert_eq!((n1, n2), (2, 2));
        }
        ch.close(200, "ok").await.unwrap();
    }
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn requeued_message_keeps_original_position() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["1", "2", "3", "4", "5"]).await;
    let (t1, _, _) = get(&ch, &q).await;
    let (t2, _, _) = get(&ch, &q).await;
    ch.basic_nack(
        t1,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .unwrap();
    let mut order = Vec::new();
    for _ in 0..4 {
        let (_, b, r) = get(&ch, &q).await;
        order.push((b, r));
    }
    assert_eq!(
        order,
        vec![
            ("1".to_string(), true),
            ("3".to_string(), false),
            ("4".to_string(), false),
            ("5".to_string(), false)
        ]
    );
    ch.basic_ack(t2, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn round_robin_across_consumers() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    let mut c1 = consume(&ch, &q, "c1", true).await;
    let mut c2 = consume(&ch, &q, "c2", true).await;
    for i in 1..=6 {
        publish(&ch, "", &q, &i.to_string()).await;
    }
    let g1: Vec<String> = collect(&mut c1).await.iter().map(body).collect();
    let g2: Vec<String> = collect(&mut c2).await.iter().map(body).collect();
    assert_eq!(g1, vec!["1", "3", "5"]);
    assert_eq!(g2, vec!["2", "4", "6"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn closing_channel_requeues_unacked() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    publish_confirmed(&conn, "", &q, &["1", "2", "3"]).await;
    let cch = conn.create_channel().await.unwrap();
    let mut c = consume(&cch, &q, "", false).await;
    let got = collect(&mut c).await;
    assert_eq!(got.len(), 3);
    got[1].ack(Default::default()).await.unwrap();
    assert_eq!(queue_state(&conn, &q).await, Some((0, 1)));
    cch.close(200, "bye").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (_, b, r) = get(&ch, &q).await;
        seen.push((b, r));
    }
    assert_eq!(seen, vec![("1".to_string(), true), ("3".to_string(), true)]);
    conn.close(200, "bye").await.unwrap();
}
