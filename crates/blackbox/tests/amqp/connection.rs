//! Connection and channel lifecycle.

use amq_protocol::types::AMQPValue;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::harness::*;
use crate::raw::*;

#[tokio::test]
async fn connect_and_close() {
    let b = broker().await;
    let conn = b.connect().await;
    assert!(conn.status().connected());
    let ch = conn.create_channel().await.unwrap();
    assert!(ch.status().connected());
    within("close", conn.close(200, "bye")).await.unwrap();
    assert!(!conn.status().connected());
}

#[tokio::test]
async fn server_properties_and_capabilities() {
    let b = broker().await;
    let raw = Raw::connect(&b).await;
    let props = raw.server_properties.inner().clone();
    for key in ["product", "version", "platform"] {
        match props.get(key) {
            Some(AMQPValue::LongString(s)) => assert!(!s.as_bytes().is_empty(), "{key} empty"),
            other => panic!("server property {key}: expected longstr, got {other:?}"),
        }
    }
    let caps = match props.get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t.inner().clone(),
        other => panic!("capabilities: expected table, got {other:?}"),
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            caps.get(cap),
            Some(&AMQPValue::Boolean(true)),
            "capability {cap} must be true"
        );
    }
    let tune = raw.tune.clone().unwrap();
    assert!(tune.frame_max >= 4096);
    assert!(tune.channel_max > 0);
    raw.close().await;
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let b = broker().await;
    // lapin: connect fails.
    let url = b.url_with("guest", "definitely-wrong", "/");
    let r = within(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    assert!(r.is_err(), "connect with wrong password must fail");
    // Wire: with authentication_failure_close the server sends connection.close 403.
    match Raw::handshake(&b, "guest", "definitely-wrong", "/").await {
        Handshake::Closed(c) => {
            let (code, text, class, method) = conn_cc(&c);
            assert_eq!(code, 403);
            assert!(
                text.starts_with(
                    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"
                ),
                "{text}"
            );
            assert_eq!((class, method), (0, 0));
        }
        Handshake::Open(_) => panic!("wrong password accepted"),
        Handshake::Eof => panic!("expected connection.close 403, got EOF"),
    }
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let b = broker().await;
    let vhost = uniq("novhost");
    let url = b.url_with("guest", "guest", &vhost);
    let r = within(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    let (code, text) = expect_amqp_err(r.map(|_| ()));
    assert_eq!(code, 530);
    assert_eq!(text, format!("NOT_ALLOWED - vhost {vhost} not found"));

    match Raw::handshake(&b, "guest", "guest", &vhost).await {
        Handshake::Closed(c) => {
            let (code, text, class, method) = conn_cc(&c);
            assert_eq!(code, 530);
            assert_eq!(text, format!("NOT_ALLOWED - vhost {vhost} not found"));
            assert_eq!((class, method), (10, 40), "connection.open");
        }
        Handshake::Open(_) => panic!("unknown vhost accepted"),
        Handshake::Eof => panic!("expected connection.close 530, got EOF"),
    }
}

#[tokio::test]
async fn many_channels_on_one_connection() {
    let b = broker().await;
    let conn = b.connect().await;
    let q = uniq("manych");
    let mut chans = Vec::new();
    for _ in 0..50 {
        chans.push(conn.create_channel().await.unwrap());
    }
    let ids: std::collections::HashSet<u16> = chans.iter().map(|c| c.id()).collect();
    assert_eq!(ids.len(), 50, "channel ids must be distinct");
    chans[0]
        .queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    for (i, ch) in chans.iter().enumerate() {
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let last = chans.last().unwrap();
    let ok = last
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
    // Each channel's publish is ordered relative to its own later methods, but
    // the passive declare on the last channel may overtake other channels.
    let mut count = ok.message_count();
    for _ in 0..50 {
        if count == 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        count = last
            .queue_declare(
                &q,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count();
    }
    assert_eq!(count, 50);
    for ch in &chans[1..] {
        ch.close(200, "ok").await.unwrap();
    }
    chans[0]
        .queue_delete(&q, QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn channel_close_and_reopen() {
    let b = broker().await;
    let conn = b.connect().await;
    let q = uniq("reopen");
    for _ in 0..3 {
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            &q,
            QueueDeclareOptions {
                auto_delete: false,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.close(200, "done").await.unwrap();
        assert!(!ch.status().connected());
        // Using a closed channel fails client-side.
        assert!(ch
            .queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
            .await
            .is_err());
    }
    // Raw: reuse the very same channel number after close.
    let mut raw = Raw::connect(&b).await;
    for _ in 0..3 {
        raw.open_channel(1).await;
        raw.send(
            1,
            amq_protocol::protocol::AMQPClass::Channel(
                amq_protocol::protocol::channel::AMQPMethod::Close(
                    amq_protocol::protocol::channel::Close {
                        reply_code: 200,
                        reply_text: ss("bye"),
                        class_id: 0,
                        method_id: 0,
                    },
                ),
            ),
        )
        .await;
        match raw.recv_method(1).await {
            Some(amq_protocol::protocol::AMQPClass::Channel(
                amq_protocol::protocol::channel::AMQPMethod::CloseOk(_),
            )) => {}
            other => panic!("expected channel.close-ok, got {other:?}"),
        }
    }
    raw.close().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(&q, QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "bye").await.unwrap();
}
