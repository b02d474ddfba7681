//! Connection lifecycle: heartbeats, channel_max, and clean-up after a client
//! vanishes without closing.

use std::time::{Duration, Instant};

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use lapin::options::*;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::harness::*;
use crate::raw::*;

/// A lapin connection negotiating a 1 s heartbeat.
async fn lapin_heartbeat_1s(b: &Broker) -> Connection {
    let url = format!("{}?heartbeat=1", b.url);
    within(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .expect("connect with heartbeat=1")
}

/// Declare, publish, get: the connection still works.
async fn round_trip(conn: &Connection) {
    let ch = within("channel", conn.create_channel()).await.unwrap();
    let q = uniq("alive");
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "",
        &q,
        Default::default(),
        b"ping",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let got = within("get", ch.basic_get(&q, BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("message");
    assert_eq!(got.delivery.data, b"ping");
    ch.close(200, "ok").await.unwrap();
}

#[tokio::test]
async fn silent_client_dropped_after_missed_heartbeats() {
    let b = broker().await;
    let other = lapin_heartbeat_1s(&b).await;
    let mut raw = Raw::connect_tuned(&b, 1, None).await;
    let start = Instant::now();
    let mut heartbeats = 0;
    let dropped_after = loop {
        match raw.recv_within(Duration::from_secs(6)).await {
            Recv::Frame(AMQPFrame::Heartbeat(_)) => heartbeats += 1,
            // RabbitMQ drops the socket; a close frame first is fine too.
            Recv::Frame(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(_)),
            )) => {}
            Recv::Frame(f) => panic!("unexpected frame {f:?}"),
            Recv::Eof => break start.elapsed(),
            Recv::Timeout => panic!(
                "silent client with heartbeat=1 still connected after {:?}",
                start.elapsed()
            ),
        }
    };
    assert!(
        dropped_after >= Duration::from_millis(1000),
        "dropped too early ({dropped_after:?}): one missed heartbeat is not enough"
    );
    assert!(
        dropped_after <= Duration::from_millis(4500),
        "dropped too late: {dropped_after:?}"
    );
    assert!(
        heartbeats >= 1,
        "server sent no heartbeats on a 1 s interval"
    );
    // The other connection, idle all along but heartbeating, still works.
    round_trip(&other).await;
    other.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn heartbeating_client_stays_connected() {
    let b = broker().await;
    let mut raw = Raw::connect_tuned(&b, 1, None).await;
    let start = Instant::now();
    let mut received = 0;
    while start.elapsed() < Duration::from_millis(3500) {
        raw.send_heartbeat().await;
        // Wait ~400 ms, reading whatever the server sends meanwhile.
        let until = Instant::now() + Duration::from_millis(400);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match raw.recv_within(left).await {
                Recv::Frame(AMQPFrame::Heartbeat(_)) => received += 1,
                Recv::Frame(f) => panic!("unexpected frame {f:?}"),
                Recv::Eof => panic!("dropped after {:?} despite heartbeats", start.elapsed()),
                Recv::Timeout => break,
            }
        }
    }
    assert!(received >= 1, "server sent no heartbeats");
    raw.open_channel(1).await;
    raw.close().await;
    // lapin, idle for the same time, heartbeats by itself.
    let conn = lapin_heartbeat_1s(&b).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    round_trip(&conn).await;
    conn.close(200, "bye").await.unwrap();
}

fn open(ch: u16) -> (u16, AMQPClass) {
    (
        ch,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
}

/// Opens channels 1..=n pipelined and waits for every open-ok.
async fn open_many(raw: &mut Raw, n: u16) {
    for id in 1..=n {
        let (c, m) = open(id);
        raw.send(c, m).await;
    }
    let mut ok = std::collections::BTreeSet::new();
    while ok.len() < n as usize {
        match raw.recv().await {
            Some(AMQPFrame::Method(c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))) => {
                assert!(ok.insert(c), "two open-ok for channel {c}");
            }
            other => panic!(
                "expected channel.open-ok ({} so far), got {other:?}",
                ok.len()
            ),
        }
    }
}

#[tokio::test]
async fn channels_up_to_channel_max() {
    let b = broker().await;
    // The server's own limit.
    let mut raw = Raw::connect_tuned(&b, 0, None).await;
    let max = raw.tune.as_ref().unwrap().channel_max;
    assert!(
        max > 0,
        "channel_max 0 (unlimited) is not offered by RabbitMQ"
    );
    open_many(&mut raw, max).await;
    // Every channel is usable: close the last and reopen it.
    raw.send(
        max,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: ss("bye"),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    match raw.recv_method(max).await {
        Some(AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected close-ok, got {other:?}"),
    }
    raw.open_channel(max).await;
    raw.close().await;

    // A lower limit chosen by the client is enforced: one more channel is a
    // connection error (RabbitMQ: 530 NOT_ALLOWED).
    let mut raw = Raw::connect_tuned(&b, 0, Some(8)).await;
    open_many(&mut raw, 8).await;
    let (c, m) = open(9);
    raw.send(c, m).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 530, "{close:?}");
}

#[tokio::test]
async fn vanished_connection_requeues_unacked_and_drops_exclusive_queues() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("vanish");
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let bodies = ["m0", "m1", "m2", "m3", "m4"];
    publish_confirmed(&conn, "", &q, &bodies).await;

    let excl = uniq("vanish-excl");
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: ss(&excl),
            passive: false,
            durable: false,
            exclusive: true,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))) => {}
        other => panic!("expected declare-ok, got {other:?}"),
    }
    raw.consume(1, &q, "raw", false).await;
    let (mut delivers, mut bodies_seen) = (0, 0);
    while delivers < bodies.len() || bodies_seen < bodies.len() {
        match raw.recv().await {
            Some(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d)))) => {
                assert!(!d.redelivered);
                delivers += 1;
            }
            Some(AMQPFrame::Body(1, _)) => bodies_seen += 1,
            Some(_) => {}
            None => panic!("raw connection dropped"),
        }
    }
    // Another consumer gets nothing while the messages are held unacked.
    let mut other = ch
        .basic_consume(&q, "other", Default::default(), FieldTable::default())
        .await
        .unwrap();
    no_delivery(&mut other).await;

    // Vanish: socket closed, no connection.close.
    drop(raw);

    for want in bodies {
        let d = next_delivery(&mut other).await;
        assert_eq!(d.data, want.as_bytes(), "requeued in original order");
        assert!(d.redelivered, "requeued message must be redelivered");
        d.ack(Default::default()).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let c = conn.create_channel().await.unwrap();
        match c
            .queue_declare(
                &excl,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
        {
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "exclusive queue of a vanished connection still exists"
                );
                c.close(200, "ok").await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                assert_eq!(amqp_err(&e).0, 404, "{e}");
                break;
            }
        }
    }
    ch.basic_cancel("other", Default::default()).await.unwrap();
    ch.queue_delete(&q, Default::default()).await.unwrap();
    conn.close(200, "bye").await.unwrap();
}
