//! The shovel: an embedded broker with a data folder forwards a queue to
//! another broker over TCP, through that broker going away and coming back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren_embedded::shovel::{Shovel, ShovelConfig};
use warren_embedded::{Broker, Config};

use crate::{uniq, TempDir, WAIT};

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn publish(ch: &lapin::Channel, q: &str, from: usize, to: usize) {
    let mut pending = Vec::new();
    for i in from..to {
        let props = BasicProperties::default().with_delivery_mode(2);
        let c = ch
            .basic_publish("", q, Default::default(), format!("m{i}").as_bytes(), props)
            .await
            .unwrap();
        pending.push(c);
    }
    for c in pending {
        assert!(c.await.unwrap().is_ack());
    }
}

async fn wait_moved(shovel: &Shovel, n: u64, within: Duration) {
    let start = Instant::now();
    while shovel.moved() < n {
        assert!(start.elapsed() < within, "moved {} of {n}", shovel.moved());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_dest(dir: &TempDir, name: &str, addr: std::net::SocketAddr) -> Broker {
    let mut cfg = Config::durable(&dir.0).name(name).amqp_listener(addr);
    cfg.server.shutdown_timeout_ms = 1_000;
    Broker::start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shovel_forwards_confirmed_through_a_destination_outage() {
    let (src_dir, dest_dir) = (TempDir::new("shovel-src"), TempDir::new("shovel-dest"));
    let src = Broker::start(Config::durable(&src_dir.0).name(uniq("src")))
        .await
        .unwrap();
    let dest_name = uniq("dest");
    let dest = start_dest(&dest_dir, &dest_name, "127.0.0.1:0".parse().unwrap()).await;
    let dest_addr = dest.amqp_addr().unwrap();
    let (outbox, inbox) = (uniq("outbox"), uniq("inbox"));
    let sconn = src.connect(Default::default()).await.unwrap();
    let sch = sconn.create_channel().await.unwrap();
    sch.queue_declare(&outbox, durable(), FieldTable::default())
        .await
        .unwrap();
    sch.confirm_select(Default::default()).await.unwrap();
    {
        let dconn = dest.connect(Default::default()).await.unwrap();
        let dch = dconn.create_channel().await.unwrap();
        dch.queue_declare(&inbox, durable(), FieldTable::default())
            .await
            .unwrap();
        dconn.close(200, "").await.unwrap();
    }
    publish(&sch, &outbox, 0, 100).await;
    let mut cfg = ShovelConfig::new(&src.url(), &outbox, &format!("amqp://{dest_addr}"), "");
    cfg.dest_routing_key = Some(inbox.clone());
    cfg.reconnect_delay = Duration::from_millis(100);
    let shovel = Shovel::start(cfg);
    wait_moved(&shovel, 100, WAIT).await;
    // The destination goes away: its port refuses; work is still accepted
    // (confirmed) on the source's disk meanwhile.
    dest.shutdown().await;
    publish(&sch, &outbox, 100, 300).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        shovel.moved(),
        100,
        "nothing moves while the destination is down"
    );
    // Back on the same port, with its data: the shovel reconnects.
    let dest = start_dest(&dest_dir, &dest_name, dest_addr).await;
    wait_moved(&shovel, 300, WAIT * 2).await;
    shovel.stop().await;
    let dconn = dest.connect(Default::default()).await.unwrap();
    let dch = dconn.create_channel().await.unwrap();
    let mut consumer = crate::auto_ack_consumer(&dch, &inbox).await;
    let mut seen = HashSet::new();
    while seen.len() < 300 {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("all 300 arrive")
            .unwrap()
            .unwrap();
        seen.insert(String::from_utf8_lossy(&d.data).into_owned());
    }
    assert_eq!(
        seen,
        (0..300).map(|i| format!("m{i}")).collect::<HashSet<_>>()
    );
    // And the source is drained: everything was acked after its confirm.
    let left = sch
        .queue_declare(
            &outbox,
            QueueDeclareOptions {
                passive: true,
                ..durable()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(left.message_count(), 0);
    dest.shutdown().await;
    src.shutdown().await;
}
