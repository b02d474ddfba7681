//! Exchange types, routing semantics and exchange-level errors.

use std::collections::BTreeSet;

use amq_protocol::protocol::{basic, AMQPClass};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};

use crate::harness::*;
use crate::raw::*;

pub async fn declare_ex(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name,
        kind,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Server-named exclusive queue.
pub async fn temp_queue(ch: &Channel) -> String {
    ch.queue_declare(
        "",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .name()
    .to_string()
}

pub async fn publish(ch: &Channel, ex: &str, key: &str, body: &str) {
    ch.basic_publish(
        ex,
        key,
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

/// Drain a queue with basic.get (no-ack) and return the bodies in order.
pub async fn drain(ch: &Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    out
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn as_set(v: Vec<String>) -> BTreeSet<String> {
    v.into_iter().collect()
}

#[tokio::test]
async fn direct_exchange_routing() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("direct");
    declare_ex(&ch, &ex, ExchangeKind::Direct).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    ch.queue_bind(&q1, &ex, "red", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(&q2, &ex, "red", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(&q2, &ex, "green", Default::default(), FieldTable::default())
        .await
        .unwrap();
    for k in ["red", "green", "blue", "RED", ""] {
        publish(&ch, &ex, k, k).await;
    }
    assert_eq!(drain(&ch, &q1).await, vec!["red"]);
    assert_eq!(drain(&ch, &q2).await, vec!["red", "green"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn fanout_exchange_ignores_routing_key() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("fanout");
    declare_ex(&ch, &ex, ExchangeKind::Fanout).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    ch.queue_bind(&q1, &ex, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        &q2,
        &ex,
        "whatever",
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &ex, "x", "m1").await;
    publish(&ch, &ex, "", "m2").await;
    assert_eq!(drain(&ch, &q1).await, vec!["m1", "m2"]);
    assert_eq!(drain(&ch, &q2).await, vec!["m1", "m2"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn topic_exchange_semantics() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("topic");
    declare_ex(&ch, &ex, ExchangeKind::Topic).await;
    let keys = [
        "", "a", "b", "a.b", "a.c", "a.b.c", "a.b.b.c", "a..c", "a.", ".a", "b.a", "b.c.a", "ab",
        "a.x.b", "a.x.y.b", "a.b.c.d", "..",
    ];
    let cases: &[(&str, &[&str])] = &[
        ("a.b", &["a.b"]),
        ("a.*", &["a.b", "a.c", "a."]),
        ("*", &["a", "b", "ab"]),
        ("*.*", &["a.b", "a.c", "a.", ".a", "b.a"]),
        ("a.*.c", &["a.b.c", "a..c"]),
        ("#", &keys),
        (
            "a.#",
            &[
                "a", "a.b", "a.c", "a.b.c", "a.b.b.c", "a..c", "a.", "a.x.b", "a.x.y.b", "a.b.c.d",
            ],
        ),
        ("#.a", &["a", ".a", "b.a", "b.c.a"]),
        ("a.#.b", &["a.b", "a.x.b", "a.x.y.b"]),
        ("#.c", &["a.c", "a.b.c", "a.b.b.c", "a..c"]),
        (
            "*.#",
            &[
                "a", "b", "a.b", "a.c", "a.b.c", "a.b.b.c", "a..c", "a.", ".a", "b.a", "b.c.a",
                "ab", "a.x.b", "a.x.y.b", "a.b.c.d", "..",
            ],
        ),
        (
            "a.*.#",
            &[
                "a.b", "a.c", "a.b.c", "a.b.b.c", "a..c", "a.", "a.x.b", "a.x.y.b", "a.b.c.d",
            ],
        ),
        ("#.#", &keys),
        ("*.*.*", &["a.b.c", "a..c", "..", "a.x.b", "b.c.a"]),
        ("a..c", &["a..c"]),
        ("", &[""]),
    ];
    let mut queues = Vec::new();
    for (pattern, _) in cases {
        let q = temp_queue(&ch).await;
        ch.queue_bind(&q, &ex, pattern, Default::default(), FieldTable::default())
            .await
            .unwrap();
        queues.push(q);
    }
    for k in keys {
        publish(&ch, &ex, k, k).await;
    }
    for ((pattern, expected), q) in cases.iter().zip(&queues) {
        let got = drain(&ch, q).await;
        assert_eq!(as_set(got), set(expected), "binding pattern {pattern:?}");
    }
    conn.close(200, "bye").await.unwrap();
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

#[tokio::test]
async fn headers_exchange_all_and_any() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("headers");
    declare_ex(&ch, &ex, ExchangeKind::Headers).await;
    let binds: Vec<(&str, FieldTable)> = vec![
        (
            "all",
            table(&[("x-match", s("all")), ("a", s("1")), ("b", s("2"))]),
        ),
        (
            "any",
            table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]),
        ),
        ("default", table(&[("a", s("1")), ("b", s("2"))])),
        (
            "all-x",
            table(&[("x-match", s("all-with-x")), ("x-k", s("v")), ("a", s("1"))]),
        ),
        (
            "any-x",
            table(&[("x-match", s("any-with-x")), ("x-k", s("v"))]),
        ),
        (
            "any-ignores-x",
            table(&[("x-match", s("any")), ("x-k", s("v"))]),
        ),
        (
            "void",
            table(&[("x-match", s("all")), ("a", AMQPValue::Void)]),
        ),
        (
            "int",
            table(&[("x-match", s("all")), ("n", AMQPValue::LongInt(5))]),
        ),
        ("empty-all", table(&[("x-match", s("all"))])),
    ];
    let mut queues = Vec::new();
    for (_, args) in &binds {
        let q = temp_queue(&ch).await;
        ch.queue_bind(&q, &ex, "", Default::default(), args.clone())
            .await
            .unwrap();
        queues.push(q);
    }
    let msgs: Vec<(&str, FieldTable)> = vec![
        ("ab", table(&[("a", s("1")), ("b", s("2"))])),
        ("a", table(&[("a", s("1"))])),
        ("a-wrong", table(&[("a", s("9")), ("b", s("2"))])),
        ("none", table(&[])),
        ("xk", table(&[("x-k", s("v")), ("a", s("1"))])),
        ("n5", table(&[("n", AMQPValue::LongInt(5))])),
        ("n5long", table(&[("n", AMQPValue::LongLongInt(5))])),
    ];
    for (body, headers) in &msgs {
        ch.basic_publish(
            &ex,
            "ignored",
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_headers(headers.clone()),
        )
        .await
        .unwrap();
    }
    let expected: &[&[&str]] = &[
        &["ab"],
        &["ab", "a", "a-wrong", "xk"],
        &["ab"],
        &["xk"],
        &["xk"],
        &[],
        &["ab", "a", "a-wrong", "xk"],
        // RabbitMQ compares numbers by value: a long-long 5 equals a long 5.
        &["n5", "n5long"],
        &["ab", "a", "a-wrong", "none", "xk", "n5", "n5long"],
    ];
    for (((name, _), q), exp) in binds.iter().zip(&queues).zip(expected) {
        assert_eq!(as_set(drain(&ch, q).await), set(exp), "binding {name}");
    }
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, "hello").await;
    publish(&ch, "", &uniq("nosuchqueue"), "lost").await;
    assert_eq!(drain(&ch, &q).await, vec!["hello"]);
    // Binding to the default exchange is refused.
    let (code, text) = expect_amqp_err(
        ch.queue_bind(&q, "", "x", Default::default(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn predeclared_exchanges_exist() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        ch.exchange_declare(
            name,
            kind.clone(),
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("passive declare {name}: {e}"));
        // Non-passive redeclare with the same (durable) attributes is fine too.
        ch.exchange_declare(
            name,
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("redeclare {name}: {e}"));
    }
    // amq.direct actually routes.
    let q = temp_queue(&ch).await;
    let key = uniq("k");
    ch.queue_bind(
        &q,
        "amq.direct",
        &key,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "amq.direct", &key, "via-amq.direct").await;
    assert_eq!(drain(&ch, &q).await, vec!["via-amq.direct"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn passive_declare_missing_exchange_is_404() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("missing");
    let (code, text) = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 404);
    assert_eq!(text, format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"));
    assert!(conn.status().connected());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn redeclare_with_different_attributes_is_406() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = uniq("redecl");
    declare_ex(&ch, &ex, ExchangeKind::Direct).await;
    // Same attributes: ok.
    declare_ex(&ch, &ex, ExchangeKind::Direct).await;
    let (code, text) = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{ex}' in vhost '/': received 'fanout' but current is 'direct'")
    );
    let ch = conn.create_channel().await.unwrap();
    let (code, text) = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{ex}' in vhost '/': received 'true' but current is 'false'")
    );
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete(&ex, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn delete_if_unused_on_bound_exchange_is_406() {
    let b = broker().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = uniq("inuse");
    ch.exchange_declare(
        &ex,
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = temp_queue(&ch).await;
    ch.queue_bind(&q, &ex, "k", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let (code, text) = expect_amqp_err(
        ch.exchange_delete(
            &ex,
            ExchangeDeleteOptions {
                if_unused: true,
                nowait: false,
            },
        )
        .await,
    );
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - exchange '{ex}' in vhost '/' in use")
    );
    let ch = conn.create_channel().await.unwrap();
    ch.queue_unbind(&q, &ex, "k", FieldTable::default())
        .await
        .unwrap();
    ch.exchange_delete(
        &ex,
        ExchangeDeleteOptions {
            if_unused: true,
            nowait: false,
        },
    )
    .await
    .unwrap();
    // Deleting a missing exchange is ok in RabbitMQ 3.x.
    ch.exchange_delete(&ex, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn exchange_to_exchange_bindings() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let src = uniq("e2e-src");
    let dst = uniq("e2e-dst");
    for (name, kind) in [(&src, ExchangeKind::Topic), (&dst, ExchangeKind::Direct)] {
        ch.exchange_declare(name, kind, Default::default(), FieldTable::default())
            .await
            .unwrap();
    }
    let q = temp_queue(&ch).await;
    ch.queue_bind(&q, &dst, "x.y", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.exchange_bind(&dst, &src, "x.*", Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &src, "x.y", "1").await; // src matches x.*, dst matches x.y
    publish(&ch, &src, "x.z", "2").await; // dst does not match
    publish(&ch, &src, "q.y", "3").await; // src does not match
    publish(&ch, &dst, "x.y", "4").await; // direct to dst
    assert_eq!(drain(&ch, &q).await, vec!["1", "4"]);
    // Duplicate routes through two paths deliver once.
    ch.exchange_bind(&dst, &src, "#", Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &src, "x.y", "5").await;
    assert_eq!(drain(&ch, &q).await, vec!["5"]);
    ch.exchange_unbind(&dst, &src, "x.*", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.exchange_unbind(&dst, &src, "#", Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &src, "x.y", "6").await;
    publish(&ch, &dst, "x.y", "7").await;
    assert_eq!(drain(&ch, &q).await, vec!["7"]);
    // Binding to a missing source exchange is 404.
    let missing = uniq("e2e-missing");
    let (code, text) = expect_amqp_err(
        ch.exchange_bind(
            &dst,
            &missing,
            "",
            Default::default(),
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 404);
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
    );
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete(&src, Default::default()).await.unwrap();
    ch.exchange_delete(&dst, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn auto_delete_exchange_goes_when_last_binding_removed() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("autodel");
    declare_ex(&ch, &ex, ExchangeKind::Direct).await;
    let q = temp_queue(&ch).await;
    // Never bound: stays.
    ch.exchange_declare(
        &ex,
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(&q, &ex, "a", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(&q, &ex, "b", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_unbind(&q, &ex, "a", FieldTable::default())
        .await
        .unwrap();
    publish(&ch, &ex, "b", "still-there").await;
    assert_eq!(drain(&ch, &q).await, vec!["still-there"]);
    ch.queue_unbind(&q, &ex, "b", FieldTable::default())
        .await
        .unwrap();
    let (code, _) = expect_amqp_err(
        ch.exchange_declare(
            &ex,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(
        code, 404,
        "auto-delete exchange must be gone after last unbind"
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn alternate_exchange_receives_unroutable() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ae = uniq("ae");
    let main = uniq("ae-main");
    declare_ex(&ch, &ae, ExchangeKind::Fanout).await;
    ch.exchange_declare(
        &main,
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        table(&[("alternate-exchange", s(&ae))]),
    )
    .await
    .unwrap();
    let qa = temp_queue(&ch).await;
    let qm = temp_queue(&ch).await;
    ch.queue_bind(&qa, &ae, "", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        &qm,
        &main,
        "routed",
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &main, "routed", "r").await;
    publish(&ch, &main, "other", "u").await;
    assert_eq!(drain(&ch, &qm).await, vec!["r"]);
    assert_eq!(drain(&ch, &qa).await, vec!["u"]);
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn reserved_amq_prefix_is_403() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let (code, text) = expect_amqp_err(
        ch.exchange_declare(
            "amq.custom",
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        text,
        "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'"
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn internal_exchange_rejects_direct_publish() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("internal");
    ch.exchange_declare(
        &ex,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: ss(&ex),
            routing_key: ss(""),
            mandatory: false,
            immediate: false,
        })),
    )
    .await;
    // Content frames are not needed: RabbitMQ checks the exchange when the
    // full message arrives; send header + empty body.
    raw.send_content(1, b"x").await;
    let close = raw.expect_channel_close(1).await;
    assert_eq!(
        cc(&close),
        (
            403,
            format!("ACCESS_REFUSED - cannot publish to internal exchange '{ex}' in vhost '/'"),
            60,
            40
        )
    );
    raw.close().await;
    ch.exchange_delete(&ex, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}
