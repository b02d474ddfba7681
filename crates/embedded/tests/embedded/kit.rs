//! service-kit's publisher and worker pool over the in-process transport,
//! switched to it by nothing but the URL.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use service_kit::{ConsumerConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, Topology};
use warren_embedded::{Broker, Config};

use crate::{uniq, TempDir, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_publisher_and_worker_over_the_in_process_transport() {
    let dir = TempDir::new("warren-embedded-kit");
    let broker = Broker::start(Config::durable(&dir.0).name(uniq("kit")))
        .await
        .unwrap();
    let q = uniq("jobs");
    let kit = Kit::start(KitConfig::new(broker.url()), Topology::new().queue(&q));
    let got = Arc::new(AtomicU32::new(0));
    let g = got.clone();
    let handle = kit
        .consume(ConsumerConfig::new(&q), move |_d| {
            let g = g.clone();
            async move {
                g.fetch_add(1, Ordering::SeqCst);
                Outcome::Ack
            }
        })
        .await;
    let p = kit.publisher(PublisherConfig::default());
    for i in 0..100 {
        // Persistent, and awaited until the broker confirms it.
        p.publish(Message::new("", &q, format!("job {i}")))
            .await
            .unwrap();
    }
    let start = Instant::now();
    while got.load(Ordering::SeqCst) < 100 {
        assert!(start.elapsed() < WAIT, "worker got {got:?} of 100");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(kit.metrics().reconnects_for("publish"), 0);
    handle.shutdown().await;
    kit.shutdown().await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_waits_for_an_embedded_broker_that_starts_later() {
    let name = uniq("late");
    let q = uniq("late-q");
    let mut cfg = KitConfig::new(format!("warren-embedded://{name}"));
    cfg = cfg.backoff(Duration::from_millis(20), Duration::from_millis(100));
    let kit = Kit::start(cfg, Topology::new().queue(&q));
    let p = kit.publisher(PublisherConfig::default());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        kit.health().report().connections.values().all(|up| !up),
        "nothing to connect to yet"
    );
    let broker = Broker::start(Config::in_memory().name(&name))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, p.publish(Message::new("", &q, "hello")))
        .await
        .unwrap()
        .unwrap();
    kit.shutdown().await;
    broker.shutdown().await;
}
