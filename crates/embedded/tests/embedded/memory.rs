//! The in-memory in-process transport (`Broker::memory_stream`, no socket):
//! warren-perf's client speaks AMQP over it, lapin (over the socketpair)
//! reads what it published, shutdown and a vanished client behave as on TCP.

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, BasicPublish, Method,
    ShortStr, CLASS_BASIC,
};
use bytes::BytesMut;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::ConnectionProperties;
use warren_embedded::{Broker, Config};
use warren_perf::client::Connection;
use warren_perf::stream::Stream;
use warren_perf::uri::AmqpUri;

use crate::{uniq, WAIT};

fn guest() -> AmqpUri {
    AmqpUri::parse("amqp://guest:guest@in-memory/%2f").unwrap()
}

async fn open(broker: &Broker) -> Connection {
    let pipe = broker.memory_stream().unwrap();
    tokio::time::timeout(WAIT, Connection::over(Stream::Memory(pipe), &guest()))
        .await
        .expect("handshake in time")
        .unwrap()
}

/// `n` persistent publishes to the default exchange, bodies `m0`, `m1`, ...
fn publishes(queue: &str, n: usize, frame_max: u32) -> BytesMut {
    let mut b = BytesMut::new();
    for i in 0..n {
        let publish = Method::BasicPublish(BasicPublish {
            routing_key: ShortStr::try_from_str(queue).unwrap(),
            ..Default::default()
        });
        encode_method_frame(&mut b, 1, &publish);
        let body = format!("m{i}");
        // Property flags: delivery-mode only (bit 12), then the mode: 2.
        encode_content_header_frame(&mut b, 1, CLASS_BASIC, body.len() as u64, &[0x10, 0, 2]);
        encode_body_frames(&mut b, 1, body.as_bytes(), frame_max);
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_over_the_pipe_consumed_with_lapin() {
    let broker = Broker::start(Config::in_memory().name(uniq("mem")))
        .await
        .unwrap();
    let q = uniq("mem");
    let n = 20_000;
    let mut c = open(&broker).await;
    c.open_channel(1).await.unwrap();
    c.declare_queue(1, &q, true).await.unwrap();
    c.confirm_select(1).await.unwrap();
    // ~1.6 MB, three pipes' worth (512 KiB): the writer waits for room.
    let (mut rd, mut wr) = c.into_split();
    let frames = publishes(&q, n, wr.frame_max);
    wr.write_all(&frames).await.unwrap();
    // Every publish confirmed (acks, possibly `multiple`).
    let mut confirmed = 0u64;
    while confirmed < n as u64 {
        tokio::time::timeout(WAIT, rd.fill())
            .await
            .expect("confirms in time")
            .unwrap();
        while let Some(f) = rd.try_frame().unwrap() {
            match Method::decode(f.payload).unwrap() {
                Method::BasicAck(a) => confirmed = a.delivery_tag,
                m => panic!("unexpected {}", m.name()),
            }
        }
    }
    let conn = broker
        .connect(ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = crate::auto_ack_consumer(&ch, &q).await;
    for i in 0..n {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("a delivery in time")
            .expect("consumer open")
            .unwrap();
        assert_eq!(d.data, format!("m{i}").as_bytes(), "in publish order");
        assert_eq!(d.properties.delivery_mode(), &Some(2));
    }
    wr.send_close().await.unwrap();
    rd.drain_until_close_ok().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_pipe_connections_with_320() {
    let broker = Broker::start(Config::in_memory().name(uniq("mem")))
        .await
        .unwrap();
    let mut c = open(&broker).await;
    c.open_channel(1).await.unwrap();
    let (mut rd, wr) = c.into_split();
    let started = std::time::Instant::now();
    let stop = tokio::spawn(broker.shutdown());
    let err = tokio::time::timeout(WAIT, rd.drain_until_close_ok())
        .await
        .expect("the close in time")
        .unwrap_err();
    assert!(
        err.to_string().contains("320") && err.to_string().contains("CONNECTION_FORCED"),
        "{err}"
    );
    // The client goes (EOF on the broker's side): shutdown ends without
    // waiting out its timeout for a close-ok.
    drop((rd, wr));
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_pipe_client_is_cleaned_up() {
    let broker = Broker::start(Config::in_memory().name(uniq("mem")))
        .await
        .unwrap();
    let q = uniq("mem-excl");
    let mut c = open(&broker).await;
    c.open_channel(1).await.unwrap();
    let declare = Method::QueueDeclare(amqp_codec::QueueDeclare {
        queue: ShortStr::try_from_str(&q).unwrap(),
        exclusive: true,
        ..Default::default()
    });
    match c.rpc(1, &declare).await.unwrap() {
        Method::QueueDeclareOk(_) => {}
        m => panic!("unexpected {}", m.name()),
    }
    // Gone without connection.close: the broker reads EOF and drops the
    // connection with its exclusive queue.
    drop(c);
    let conn = broker
        .connect(ConnectionProperties::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ch = conn.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match ch.queue_declare(&q, passive, FieldTable::default()).await {
            Err(lapin::Error::ProtocolError(e)) => {
                assert_eq!(e.get_id(), 404, "{e}");
                break;
            }
            Err(e) => panic!("{e}"),
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "queue still there");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    broker.shutdown().await;
}
