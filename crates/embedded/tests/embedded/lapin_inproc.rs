//! lapin over the in-process transport.

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use warren_embedded::{Broker, Config};

use crate::{uniq, TempDir, WAIT};

/// Publishes `n` persistent messages to `q` with confirms; all must be acked.
async fn publish_confirmed(ch: &lapin::Channel, q: &str, n: usize) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        let c = ch
            .basic_publish(
                "",
                q,
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        pending.push(c);
    }
    for c in pending {
        let conf = tokio::time::timeout(WAIT, c).await.unwrap().unwrap();
        assert!(conf.is_ack(), "publish confirmed with ack: {conf:?}");
    }
}

/// Consumes `n` messages from `q` (manual ack) and returns their bodies.
async fn consume(ch: &lapin::Channel, q: &str, n: usize) -> Vec<String> {
    let mut consumer = ch
        .basic_consume(q, "", BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("a delivery in time")
            .expect("consumer open")
            .unwrap();
        got.push(String::from_utf8_lossy(&d.data).into_owned());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    got
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_consume_with_confirms_in_memory() {
    let broker = Broker::start(Config::in_memory().name(uniq("mem")))
        .await
        .unwrap();
    assert_eq!(broker.amqp_addr(), None, "no TCP listener unless asked");
    let conn = broker
        .connect(ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = uniq("q");
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    publish_confirmed(&ch, &q, 500).await;
    assert_eq!(consume(&ch, &q, 500).await, expected(500));
    // The broker's own rules apply in-process: a missing queue is 404.
    let ch2 = conn.create_channel().await.unwrap();
    let err = ch2
        .queue_declare(
            "no-such-queue",
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("NOT_FOUND - no queue 'no-such-queue' in vhost '/'"),
        "{err}"
    );
    conn.close(200, "bye").await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_messages_survive_a_restart_in_process() {
    let dir = TempDir::new("warren-embedded-durable");
    let name = uniq("durable");
    let q = uniq("dq");
    {
        let broker = Broker::start(Config::durable(&dir.0).name(&name))
            .await
            .unwrap();
        let conn = broker
            .connect(ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            &q,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        publish_confirmed(&ch, &q, 200).await;
        // The broker closes the connection at shutdown (320), not the client.
        broker.shutdown().await;
        assert!(!conn.status().connected(), "shutdown closed the client");
    }
    assert!(
        dir.0.join("arena").exists(),
        "the server's files are in the data folder"
    );
    // Same name again: the first broker gave it back at shutdown.
    let broker = Broker::start(Config::durable(&dir.0).name(&name))
        .await
        .unwrap();
    let conn = warren_embedded::connect_url(&broker.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let declared = ch
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
    assert_eq!(
        declared.message_count(),
        200,
        "every confirmed message is back"
    );
    assert_eq!(consume(&ch, &q, 200).await, expected(200));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_keeps_nothing_across_a_restart() {
    let name = uniq("volatile");
    let q = uniq("vq");
    let broker = Broker::start(Config::in_memory().name(&name))
        .await
        .unwrap();
    let conn = broker.connect(Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(&q, durable, FieldTable::default())
        .await
        .unwrap();
    publish_confirmed(&ch, &q, 10).await;
    broker.shutdown().await;
    let broker = Broker::start(Config::in_memory().name(&name))
        .await
        .unwrap();
    let conn = broker.connect(Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let err = ch
        .queue_declare(&q, passive, FieldTable::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listener_beside_the_in_process_transport() {
    let broker = Broker::start(
        Config::in_memory()
            .name(uniq("both"))
            .amqp_listener("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let addr = broker.amqp_addr().expect("a TCP listener was asked for");
    let tcp = lapin::Connection::connect(&format!("amqp://{addr}"), Default::default())
        .await
        .unwrap();
    let inproc = broker.connect(Default::default()).await.unwrap();
    let q = uniq("shared");
    let tch = tcp.create_channel().await.unwrap();
    tch.queue_declare(&q, Default::default(), FieldTable::default())
        .await
        .unwrap();
    // Published over TCP, consumed in-process: one broker behind both.
    publish_confirmed(&tch, &q, 50).await;
    let ich = inproc.create_channel().await.unwrap();
    assert_eq!(consume(&ich, &q, 50).await, expected(50));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_unique_and_unknown_names_fail() {
    let name = uniq("named");
    let broker = Broker::start(Config::in_memory().name(&name))
        .await
        .unwrap();
    let again = Broker::start(Config::in_memory().name(&name)).await;
    assert!(
        again.is_err(),
        "a second broker of the same name is refused"
    );
    let err = warren_embedded::connect_url("warren-embedded://nobody-here", Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no embedded broker named"),
        "{err}"
    );
    // A wrong password is refused as over TCP (403 ACCESS_REFUSED).
    let url = format!("warren-embedded://guest:wrong@{name}");
    let err = warren_embedded::connect_url(&url, Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("ACCESS_REFUSED") || err.to_string().contains("403"),
        "{err}"
    );
    broker.shutdown().await;
    let err =
        warren_embedded::connect_url(&format!("warren-embedded://{name}"), Default::default())
            .await
            .unwrap_err();
    assert!(
        err.to_string().contains("no embedded broker named"),
        "{err}"
    );
}
