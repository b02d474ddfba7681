//! Consumer priorities (`x-priority`), single active consumer
//! (`x-single-active-consumer`) and the delivery acknowledgement timeout
//! (`consumer_timeout`, `x-consumer-timeout`).

use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, Consumer};

use crate::harness::*;
use crate::node::Node;

fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).unwrap()
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(k.to_string()), v.clone());
    }
    t
}

/// A fresh auto-delete queue with `args`.
async fn queue(ch: &Channel, args: FieldTable) -> String {
    let q = uniq("cons");
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    q
}

/// A manual-ack consumer on its own channel with per-consumer `prefetch`
/// (0 = unlimited) and `x-priority` (None = no argument).
async fn consumer(
    conn: &Connection,
    q: &str,
    tag: &str,
    prefetch: u16,
    priority: Option<i32>,
) -> (Channel, Consumer) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let args = match priority {
        Some(p) => table(&[("x-priority", AMQPValue::LongInt(p))]),
        None => FieldTable::default(),
    };
    let c = ch
        .basic_consume(q, tag, BasicConsumeOptions::default(), args)
        .await
        .unwrap();
    (ch, c)
}

/// Publishes `bodies` in order, then waits for a confirm of the last, so
/// they are all enqueued (and dispatched) before the test looks.
async fn publish_all(conn: &Connection, q: &str, bodies: &[&str]) {
    publish_confirmed(conn, "", q, bodies).await;
}

/// Bodies delivered to `c` until it stays quiet.
async fn received(c: &mut Consumer) -> Vec<String> {
    use futures_lite::StreamExt;
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(QUIET, c.next()).await {
        out.push(body(&d.unwrap()));
    }
    out
}

/// Deliveries (kept, for acking) until `c` stays quiet.
async fn deliveries(c: &mut Consumer) -> Vec<Delivery> {
    use futures_lite::StreamExt;
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(QUIET, c.next()).await {
        out.push(d.unwrap());
    }
    out
}

#[tokio::test]
async fn higher_priority_first_lower_only_when_higher_are_full() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = queue(&ch, FieldTable::default()).await;
    // Registered low first: order of registration must not matter.
    let (_l1ch, mut low1) = consumer(&conn, &q, "low1", 0, None).await;
    let (_l2ch, mut low2) = consumer(&conn, &q, "low2", 0, Some(0)).await;
    let (hch, mut high) = consumer(&conn, &q, "high", 2, Some(10)).await;
    publish_all(&conn, &q, &["1", "2", "3", "4", "5", "6"]).await;
    let got = deliveries(&mut high).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    // The higher one is full: the rest go round-robin to the equal lower ones.
    assert_eq!(received(&mut low1).await, ["3", "5"]);
    assert_eq!(received(&mut low2).await, ["4", "6"]);
    // Credit back: the higher one is served again before the lower ones.
    hch.basic_ack(got[1].delivery_tag, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    // A round trip on that channel, so the acks are in before the publishes.
    hch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    publish_all(&conn, &q, &["7", "8", "9"]).await;
    assert_eq!(received(&mut high).await, ["7", "8"]);
    assert_eq!(received(&mut low1).await, ["9"]);
    assert!(received(&mut low2).await.is_empty());
}

#[tokio::test]
async fn round_robin_within_the_top_priority_and_nothing_below() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = queue(&ch, FieldTable::default()).await;
    let (_a, mut a) = consumer(&conn, &q, "a", 0, Some(5)).await;
    let (_z, mut low) = consumer(&conn, &q, "low", 0, Some(-1)).await;
    let (_b, mut bb) = consumer(&conn, &q, "b", 0, Some(5)).await;
    publish_all(&conn, &q, &["1", "2", "3", "4", "5", "6"]).await;
    assert_eq!(received(&mut a).await, ["1", "3", "5"]);
    assert_eq!(received(&mut bb).await, ["2", "4", "6"]);
    assert!(received(&mut low).await.is_empty());
}

#[tokio::test]
async fn x_priority_must_be_an_integer() {
    let b = broker().await;
    let (_conn, ch) = b.channel().await;
    let q = queue(&ch, FieldTable::default()).await;
    let args = table(&[(
        "x-priority",
        AMQPValue::LongString(LongString::from("high")),
    )]);
    let err = expect_amqp_err(
        ch.basic_consume(&q, "c", BasicConsumeOptions::default(), args)
            .await,
    );
    assert_eq!(
        err,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/': \"expected integer, got longstr\""
            )
        )
    );
}

fn sac() -> FieldTable {
    table(&[("x-single-active-consumer", AMQPValue::Boolean(true))])
}

#[tokio::test]
async fn single_active_consumer_switches_on_cancel_and_channel_close() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = queue(&ch, sac()).await;
    let (ch1, mut c1) = consumer(&conn, &q, "c1", 0, None).await;
    let (_ch2, mut c2) = consumer(&conn, &q, "c2", 0, None).await;
    // A later, higher-priority consumer does not take over the active one...
    let (_ch3, mut c3) = consumer(&conn, &q, "c3", 0, Some(5)).await;
    publish_all(&conn, &q, &["1", "2", "3"]).await;
    let got = deliveries(&mut c1).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(received(&mut c2).await.is_empty());
    assert!(received(&mut c3).await.is_empty());
    ch1.basic_ack(got[0].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    // ...but when the active one is cancelled, the highest priority wins.
    ch1.basic_cancel("c1", BasicCancelOptions::default())
        .await
        .unwrap();
    publish_all(&conn, &q, &["4"]).await;
    assert_eq!(received(&mut c3).await, ["4"]);
    assert!(received(&mut c2).await.is_empty());
    // Closing c1's channel requeues what it still held: to the active one.
    ch1.close(200, "bye").await.unwrap();
    let again = deliveries(&mut c3).await;
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["2", "3"]);
    assert!(again.iter().all(|d| d.redelivered));
    assert!(received(&mut c2).await.is_empty());
}

#[tokio::test]
async fn single_active_consumer_switches_on_connection_close() {
    let b = broker().await;
    let conn1 = b.connect().await;
    let conn2 = b.connect().await;
    let ch = conn2.create_channel().await.unwrap();
    let q = queue(&ch, sac()).await;
    let (_ch1, mut c1) = consumer(&conn1, &q, "c1", 0, None).await;
    let (_ch2, mut c2) = consumer(&conn2, &q, "c2", 0, None).await;
    publish_all(&conn2, &q, &["1", "2"]).await;
    assert_eq!(received(&mut c1).await, ["1", "2"]);
    assert!(received(&mut c2).await.is_empty());
    conn1.close(200, "bye").await.unwrap();
    let got = deliveries(&mut c2).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    assert!(got.iter().all(|d| d.redelivered));
    publish_all(&conn2, &q, &["3"]).await;
    assert_eq!(received(&mut c2).await, ["3"]);
}

#[tokio::test]
async fn exclusive_consume_on_single_active_queue_is_refused() {
    let b = broker().await;
    let (_conn, ch) = b.channel().await;
    let q = queue(&ch, sac()).await;
    let err = expect_amqp_err(
        ch.basic_consume(
            &q,
            "x",
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(
        err,
        (
            403,
            format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
        )
    );
}

/// Waits for the channel error recorded in `seen`.
async fn channel_error(seen: &ErrorSlot, limit: std::time::Duration) -> (u16, String) {
    tokio::time::timeout(limit, async {
        loop {
            if let Some(e) = seen.lock().unwrap().clone() {
                return amqp_err(&e);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("channel closed for the acknowledgement timeout")
}

fn timeout_text(ch: u16, ms: u64) -> String {
    format!(
        "PRECONDITION_FAILED - delivery acknowledgement on channel {ch} timed out. Timeout value used: {ms} ms. This timeout value can be configured, see consumers doc guide to learn more"
    )
}

/// Consumes one message without acking it; checks the channel is closed
/// with RabbitMQ's text and the message requeued (redelivered) to another.
/// The queue is not auto-delete: closing the channel removes its consumer.
async fn check_times_out(conn: &Connection, args: FieldTable, ms: u64) {
    let ch0 = conn.create_channel().await.unwrap();
    let q = uniq("cons.timeout");
    ch0.queue_declare(&q, QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let (ch, mut c) = consumer(conn, &q, "slow", 0, None).await;
    let seen = watch_errors(&ch);
    publish_all(conn, &q, &["late"]).await;
    let d = next_delivery(&mut c).await;
    assert_eq!(body(&d), "late");
    let started = std::time::Instant::now();
    // RabbitMQ checks on its channel tick (channel_tick_interval).
    let err = channel_error(&seen, std::time::Duration::from_millis(ms + 5000)).await;
    assert!(
        started.elapsed().as_millis() as u64 + 50 >= ms,
        "timed out early"
    );
    assert_eq!(err, (406, timeout_text(ch.id(), ms)));
    let (ch2, mut c2) = consumer(conn, &q, "next", 0, None).await;
    let again = next_delivery(&mut c2).await;
    assert_eq!(body(&again), "late");
    assert!(again.redelivered);
    // Acked in time: nothing happens.
    let seen2 = watch_errors(&ch2);
    publish_all(conn, &q, &["fast"]).await;
    let d = next_delivery(&mut c2).await;
    ch2.basic_ack(again.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch2.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(ms + 300)).await;
    assert!(seen2.lock().unwrap().is_none());
    assert!(ch2.status().connected());
    ch0.queue_delete(&q, QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn x_consumer_timeout_closes_the_channel_and_requeues() {
    if external_broker() {
        eprintln!("skipped: x-consumer-timeout is RabbitMQ 3.12+");
        return;
    }
    let b = broker().await;
    let conn = b.connect().await;
    let args = table(&[("x-consumer-timeout", AMQPValue::LongInt(400))]);
    check_times_out(&conn, args, 400).await;
}

/// Against an external broker, set WARREN_TEST_CONSUMER_TIMEOUT_MS to the
/// consumer_timeout it runs with (RabbitMQ: `rabbitmqctl eval
/// 'application:set_env(rabbit, consumer_timeout, 3000).'`, and a short
/// `channel_tick_interval`); warren is started with 600 ms.
#[tokio::test]
async fn server_consumer_timeout_closes_the_channel_and_requeues() {
    let configured: Option<u64> = std::env::var("WARREN_TEST_CONSUMER_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok());
    let (_node, b, ms) = if external_broker() {
        let Some(ms) = configured else {
            eprintln!(
                "skipped: needs WARREN_TEST_CONSUMER_TIMEOUT_MS (a broker with a short consumer_timeout)"
            );
            return;
        };
        (None, broker().await, ms)
    } else {
        let node = Node::start(&["--consumer-timeout-ms", "600"]).await;
        let b = node.broker();
        (Some(node), b, 600)
    };
    let conn = b.connect().await;
    check_times_out(&conn, FieldTable::default(), ms).await;
}

#[tokio::test]
async fn x_consumer_timeout_must_be_a_non_negative_integer() {
    if external_broker() {
        eprintln!("skipped: x-consumer-timeout is validated by RabbitMQ 4.x, not 3.10");
        return;
    }
    let b = broker().await;
    let conn = b.connect().await;
    for (v, detail) in [
        (AMQPValue::LongInt(-1), "{value_negative,-1}".to_string()),
        (
            AMQPValue::LongString(LongString::from("1")),
            "\"expected integer, got longstr\"".to_string(),
        ),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let q = uniq("cons");
        let err = expect_amqp_err(
            ch.queue_declare(
                &q,
                QueueDeclareOptions::default(),
                table(&[("x-consumer-timeout", v)]),
            )
            .await,
        );
        assert_eq!(
            err,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue '{q}' in vhost '/': {detail}"
                )
            )
        );
    }
}
