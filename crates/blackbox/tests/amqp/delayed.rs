//! Delayed messages (`x-delayed-message` exchanges, the semantics of
//! RabbitMQ's rabbitmq_delayed_message_exchange plugin) and message
//! deduplication (LavinMQ's arguments). RabbitMQ 3.10 as installed here has
//! neither, so against an external broker these tests skip with a message.

use std::time::{Duration, Instant};

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};

use crate::harness::*;
use crate::node::{connect_retry, Node};

fn skip_external(what: &str) -> bool {
    if external_broker() {
        eprintln!("skipped {what}: RabbitMQ 3.10 here has no delayed-message/deduplication plugin");
        return true;
    }
    false
}

fn table(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(k.into(), v);
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn delayed_args(kind: &str) -> FieldTable {
    table(vec![("x-delayed-type", text(kind))])
}

fn delay_props(ms: i64) -> BasicProperties {
    BasicProperties::default().with_headers(table(vec![("x-delay", AMQPValue::LongLongInt(ms))]))
}

async fn declare_delayed(ch: &Channel, ex: &str, kind: &str, durable: bool) {
    ch.exchange_declare(
        ex,
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        delayed_args(kind),
    )
    .await
    .expect("declare delayed exchange");
}

async fn queue(ch: &Channel, q: &str, durable: bool) {
    ch.queue_declare(
        q,
        QueueDeclareOptions {
            durable,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
}

async fn publish(ch: &Channel, ex: &str, key: &str, body: &str, props: BasicProperties) {
    ch.basic_publish(ex, key, Default::default(), body.as_bytes(), props)
        .await
        .expect("publish");
}

async fn get_body(ch: &Channel, q: &str) -> Option<String> {
    ch.basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned())
}

/// Polls `q` until a message arrives (or `limit` passes).
async fn wait_body(ch: &Channel, q: &str, limit: Duration) -> Option<(String, Instant)> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(b) = get_body(ch, q).await {
            return Some((b, Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn routes_by_each_delayed_type_after_the_delay() {
    if skip_external("delayed routing") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    for kind in ["direct", "fanout", "topic", "headers"] {
        let ex = uniq("dx");
        let q = uniq("dq");
        declare_delayed(&ch, &ex, kind, false).await;
        queue(&ch, &q, false).await;
        let (key, bind_args) = match kind {
            "topic" => ("a.*", FieldTable::default()),
            "headers" => ("", table(vec![("k", text("v"))])),
            _ => ("a.b", FieldTable::default()),
        };
        ch.queue_bind(&q, &ex, key, Default::default(), bind_args)
            .await
            .expect("bind");
        let mut headers = table(vec![("x-delay", AMQPValue::LongInt(400))]);
        headers.insert("k".into(), text("v"));
        let t0 = Instant::now();
        publish(
            &ch,
            &ex,
            "a.b",
            kind,
            BasicProperties::default().with_headers(headers),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get_body(&ch, &q).await, None, "{kind}: delivered early");
        let (body, at) = wait_body(&ch, &q, WAIT)
            .await
            .expect("delayed message arrives");
        assert_eq!(body, kind);
        let late = at.duration_since(t0);
        assert!(
            late >= Duration::from_millis(400),
            "{kind}: early ({late:?})"
        );
        assert!(
            late < Duration::from_millis(1500),
            "{kind}: too late ({late:?})"
        );
        // Not routed for a non-matching key/header either way.
        if kind != "fanout" {
            publish(&ch, &ex, "zz", "no", delay_props(50)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(get_body(&ch, &q).await, None, "{kind}: routed a non-match");
        }
    }
}

#[tokio::test]
async fn fired_message_keeps_properties_with_negated_delay() {
    if skip_external("delayed properties") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let ex = uniq("dx");
    let q = uniq("dq");
    declare_delayed(&ch, &ex, "direct", false).await;
    queue(&ch, &q, false).await;
    ch.queue_bind(&q, &ex, "k", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let props = delay_props(150)
        .with_message_id(ShortString::from("m1"))
        .with_content_type(ShortString::from("text/plain"));
    publish(&ch, &ex, "k", "x", props).await;
    let end = Instant::now() + WAIT;
    let m = loop {
        if let Some(m) = ch
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            break m;
        }
        assert!(Instant::now() < end, "delayed message never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let p = &m.delivery.properties;
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("m1"));
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    let delay = p
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delay").cloned());
    assert!(
        matches!(delay, Some(AMQPValue::LongInt(-150))),
        "x-delay after firing: {delay:?}"
    );
}

#[tokio::test]
async fn no_zero_or_negative_delay_routes_at_once() {
    if skip_external("immediate delayed routing") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let ex = uniq("dx");
    let q = uniq("dq");
    declare_delayed(&ch, &ex, "fanout", false).await;
    queue(&ch, &q, false).await;
    ch.queue_bind(&q, &ex, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &ex, "", "none", BasicProperties::default()).await;
    publish(&ch, &ex, "", "zero", delay_props(0)).await;
    publish(&ch, &ex, "", "neg", delay_props(-100)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for want in ["none", "zero", "neg"] {
        assert_eq!(get_body(&ch, &q).await.as_deref(), Some(want));
    }
}

#[tokio::test]
async fn delivered_in_due_order_not_publish_order() {
    if skip_external("delayed ordering") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let ex = uniq("dx");
    let q = uniq("dq");
    declare_delayed(&ch, &ex, "direct", false).await;
    queue(&ch, &q, false).await;
    ch.queue_bind(&q, &ex, "k", Default::default(), FieldTable::default())
        .await
        .unwrap();
    for (body, ms) in [("c", 900), ("a", 300), ("b", 600)] {
        publish(&ch, &ex, "k", body, delay_props(ms)).await;
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let (b, _) = wait_body(&ch, &q, WAIT).await.expect("all three arrive");
        got.push(b);
    }
    assert_eq!(got, ["a", "b", "c"]);
}

#[tokio::test]
async fn declare_rules() {
    if skip_external("delayed declare") {
        return;
    }
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = uniq("dx");
    // Missing x-delayed-type: the plugin's 406.
    let e = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Custom("x-delayed-message".into()),
            Default::default(),
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(
        e,
        (
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
                .to_string()
        )
    );
    let ch = conn.create_channel().await.unwrap();
    declare_delayed(&ch, &ex, "topic", false).await;
    declare_delayed(&ch, &ex, "topic", false).await;
    ch.exchange_declare(
        &ex,
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare");
    let e = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Topic,
            Default::default(),
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(e.0, 406);
    assert!(e.1.contains("inequivalent arg 'type'"), "{}", e.1);
    assert!(e.1.contains("current is 'x-delayed-message'"), "{}", e.1);
    let ch = conn.create_channel().await.unwrap();
    let e = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Custom("x-delayed-message".into()),
            Default::default(),
            delayed_args("direct"),
        )
        .await,
    );
    assert_eq!(e.0, 406);
    assert!(e.1.contains("inequivalent arg 'x-delayed-type'"), "{}", e.1);
}

#[tokio::test]
async fn mandatory_is_returned_at_once_and_still_delivered() {
    if skip_external("delayed mandatory") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let ex = uniq("dx");
    let q = uniq("dq");
    declare_delayed(&ch, &ex, "direct", false).await;
    queue(&ch, &q, false).await;
    ch.queue_bind(&q, &ex, "k", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            &ex,
            "k",
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"m",
            delay_props(200),
        )
        .await
        .unwrap();
    let c = within("confirm", confirm).await.unwrap();
    let ret = c
        .take_message()
        .expect("returned at publish time, as the plugin does");
    assert_eq!(ret.reply_code, 312);
    let (body, _) = wait_body(&ch, &q, WAIT)
        .await
        .expect("still delivered later");
    assert_eq!(body, "m");
}

#[tokio::test]
async fn deleting_the_exchange_drops_pending_messages() {
    if skip_external("delayed delete") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let ex = uniq("dx");
    let q = uniq("dq");
    declare_delayed(&ch, &ex, "fanout", false).await;
    queue(&ch, &q, false).await;
    ch.queue_bind(&q, &ex, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &ex, "", "gone", delay_props(300)).await;
    ch.exchange_delete(&ex, Default::default()).await.unwrap();
    declare_delayed(&ch, &ex, "fanout", false).await;
    ch.queue_bind(&q, &ex, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get_body(&ch, &q).await, None);
}

/// Durable exchange, persistent messages: confirmed, then SIGKILL; after the
/// restart each is delivered exactly once, not before its due time (which
/// kept running while the broker was down), transient ones are gone.
#[tokio::test]
async fn persistent_delayed_messages_survive_sigkill() {
    if skip_external("delayed durability") {
        return;
    }
    let mut node = Node::start(&[]).await;
    let ex = uniq("dx");
    let q = uniq("dq");
    let n = 50;
    let t0;
    {
        let conn = connect_retry(&node.url(), WAIT).await;
        let ch = conn.create_channel().await.unwrap();
        declare_delayed(&ch, &ex, "direct", true).await;
        queue(&ch, &q, true).await;
        ch.queue_bind(&q, &ex, "k", Default::default(), FieldTable::default())
            .await
            .unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        t0 = Instant::now();
        let mut confirms = Vec::new();
        for i in 0..n {
            let props = delay_props(2500 + i).with_delivery_mode(2);
            let c = ch
                .basic_publish(
                    &ex,
                    "k",
                    Default::default(),
                    format!("p{i}").as_bytes(),
                    props,
                )
                .await
                .unwrap();
            confirms.push(c);
        }
        let tr = ch
            .basic_publish(
                &ex,
                "k",
                Default::default(),
                b"transient",
                delay_props(2500),
            )
            .await
            .unwrap();
        for c in confirms {
            assert!(within("confirm", c).await.unwrap().is_ack());
        }
        assert!(within("confirm", tr).await.unwrap().is_ack());
        node.kill();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.restart().await;
    let conn = connect_retry(&node.url(), WAIT).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(get_body(&ch, &q).await, None, "delivered before due");
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && got.len() < n as usize {
        match get_body(&ch, &q).await {
            Some(b) => {
                assert!(t0.elapsed() >= Duration::from_millis(2400), "early: {b}");
                got.push(b);
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Some(b) = get_body(&ch, &q).await {
        got.push(b);
    }
    let want: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    assert_eq!(
        got, want,
        "each confirmed delayed message exactly once, in due order"
    );
    // Due times run while the broker is down: a message due during the
    // downtime is routed right after recovery.
}

#[tokio::test]
async fn overdue_after_restart_routes_at_once() {
    if skip_external("delayed overdue") {
        return;
    }
    let mut node = Node::start(&[]).await;
    let ex = uniq("dx");
    let q = uniq("dq");
    {
        let conn = connect_retry(&node.url(), WAIT).await;
        let ch = conn.create_channel().await.unwrap();
        declare_delayed(&ch, &ex, "fanout", true).await;
        queue(&ch, &q, true).await;
        ch.queue_bind(&q, &ex, "", Default::default(), FieldTable::default())
            .await
            .unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        let c = ch
            .basic_publish(
                &ex,
                "",
                Default::default(),
                b"late",
                delay_props(300).with_delivery_mode(2),
            )
            .await
            .unwrap();
        assert!(within("confirm", c).await.unwrap().is_ack());
        node.sigterm();
        node.wait_exit(WAIT).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    node.restart().await;
    let conn = connect_retry(&node.url(), WAIT).await;
    let ch = conn.create_channel().await.unwrap();
    let (b, _) = wait_body(&ch, &q, Duration::from_millis(1000))
        .await
        .expect("overdue message routed right after recovery");
    assert_eq!(b, "late");
}

async fn dedup_queue(ch: &Channel, q: &str, extra: Vec<(&str, AMQPValue)>) {
    let mut args = table(vec![("x-message-deduplication", AMQPValue::Boolean(true))]);
    for (k, v) in extra {
        args.insert(k.into(), v);
    }
    ch.queue_declare(q, QueueDeclareOptions::default(), args)
        .await
        .expect("dedup queue");
}

fn dedup_props(key: &str) -> BasicProperties {
    BasicProperties::default().with_headers(table(vec![("x-deduplication-header", text(key))]))
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
    .expect("passive")
    .message_count()
}

#[tokio::test]
async fn dedup_queue_within_window_and_cache_size() {
    if skip_external("deduplication") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let q = uniq("dedup");
    dedup_queue(&ch, &q, vec![("x-cache-size", AMQPValue::LongInt(2))]).await;
    ch.confirm_select(Default::default()).await.unwrap();
    for key in ["a", "a", "b", "a", "c", "a"] {
        let c = ch
            .basic_publish("", &q, Default::default(), key.as_bytes(), dedup_props(key))
            .await
            .unwrap();
        assert!(
            within("confirm", c).await.unwrap().is_ack(),
            "a duplicate is still acked"
        );
    }
    // a, b kept; a dup; c evicts a; a again new.
    assert_eq!(count(&ch, &q).await, 4);
    // No header: never a duplicate.
    publish(&ch, "", &q, "x", BasicProperties::default()).await;
    publish(&ch, "", &q, "x", BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count(&ch, &q).await, 6);
}

#[tokio::test]
async fn dedup_ttl_window_and_custom_header_on_exchange() {
    if skip_external("deduplication ttl") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let ex = uniq("dedupx");
    let q = uniq("dq");
    ch.exchange_declare(
        &ex,
        ExchangeKind::Fanout,
        Default::default(),
        table(vec![
            ("x-message-deduplication", AMQPValue::Boolean(true)),
            ("x-cache-ttl", AMQPValue::LongInt(300)),
            ("x-deduplication-header", text("my-id")),
        ]),
    )
    .await
    .expect("dedup exchange");
    queue(&ch, &q, false).await;
    ch.queue_bind(&q, &ex, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let p =
        || BasicProperties::default().with_headers(table(vec![("my-id", AMQPValue::LongInt(7))]));
    publish(&ch, &ex, "", "1", p()).await;
    publish(&ch, &ex, "", "2", p()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        count(&ch, &q).await,
        1,
        "duplicate within the window dropped"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    publish(&ch, &ex, "", "3", p()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count(&ch, &q).await, 2, "after the window it passes again");
    // The default header name is not used when another is configured.
    publish(&ch, &ex, "", "4", dedup_props("z")).await;
    publish(&ch, &ex, "", "5", dedup_props("z")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count(&ch, &q).await, 4);
}

#[tokio::test]
async fn dedup_bad_arguments_are_refused() {
    if skip_external("deduplication args") {
        return;
    }
    let b = broker().await;
    let (_c, ch) = b.channel().await;
    let e = expect_amqp_err(
        ch.queue_declare(
            &uniq("dq"),
            Default::default(),
            table(vec![
                ("x-message-deduplication", AMQPValue::Boolean(true)),
                ("x-cache-size", text("big")),
            ]),
        )
        .await,
    );
    assert_eq!(e.0, 406);
}
