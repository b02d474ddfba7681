//! service-kit against a warren the tests start, or against `AMQP_URL` (e.g. RabbitMQ 3.10).
//! Tests that must kill, restart or configure the broker run on warren only.

mod examples;
mod harness;
mod otel;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use service_kit::*;

fn qcfg(queue: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(queue);
    c.retry.delays = vec![Duration::from_millis(300), Duration::from_millis(600)];
    c.retry.max_attempts = 3;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_mid_publish_keeps_every_confirmed_message() {
    if external().is_some() {
        return; // needs to kill and restart the broker
    }
    let mut b = warren(&[]);
    let q = uniq("reconnect");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let publisher = kit.publisher(PublisherConfig {
        deadline: Duration::from_secs(15),
        ..Default::default()
    });
    let confirmed = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let p = publisher.clone();
        let (q, confirmed) = (q.clone(), confirmed.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..150 {
                let m = Message::new("", &q, format!("{t}-{i}"));
                match p.publish(m).await {
                    Ok(id) => confirmed.lock().unwrap().push(id),
                    Err(e) => panic!("publish failed across the restart: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    eventually("some confirms", || confirmed.lock().unwrap().len() >= 100).await;
    b.restart_with(&[]);
    for t in tasks {
        t.await.unwrap();
    }
    let ids: Vec<String> = confirmed.lock().unwrap().clone();
    assert_eq!(ids.len(), 600);
    assert!(kit.metrics().reconnects_for("publish") >= 1);
    // Every confirmed id is in the queue, at least once, unchanged.
    let (_c, ch) = raw(&b.url).await;
    let mut seen = HashSet::new();
    while let Some(m) = ch
        .basic_get(&q, lapin::options::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        if let Some(id) = m.delivery.properties.message_id() {
            seen.insert(id.to_string());
        }
    }
    let missing: Vec<_> = ids.iter().filter(|i| !seen.contains(*i)).collect();
    assert!(
        missing.is_empty(),
        "{} confirmed ids lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    kit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_comes_back_after_the_broker_cancels_it() {
    let b = broker();
    let q = uniq("cancel");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let got = Arc::new(AtomicU32::new(0));
    let g = got.clone();
    let handle = kit
        .consume(qcfg(&q), move |_d| {
            let g = g.clone();
            async move {
                g.fetch_add(1, Ordering::SeqCst);
                Outcome::Ack
            }
        })
        .await;
    let p = kit.publisher(PublisherConfig::default());
    eventually("consuming", || {
        kit.health().report().consumers.get(&q) == Some(&true)
    })
    .await;
    p.publish(Message::new("", &q, "one")).await.unwrap();
    eventually("first delivery", || got.load(Ordering::SeqCst) == 1).await;
    // Someone deletes the queue: the broker cancels the consumer (basic.cancel).
    let (_c, ch) = raw(&b.url).await;
    ch.queue_delete(&q, Default::default()).await.unwrap();
    eventually("recovery counted", || {
        kit.metrics().channel_recoveries_for("cancel") >= 1
    })
    .await;
    eventually("re-subscribed", || {
        kit.health().report().consumers.get(&q) == Some(&true)
    })
    .await;
    p.publish(Message::new("", &q, "two")).await.unwrap();
    eventually("delivery after recovery", || {
        got.load(Ordering::SeqCst) == 2
    })
    .await;
    handle.shutdown().await;
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), retry::dlq_name(&q)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_closed_for_consumer_timeout_comes_back() {
    if external().is_some() {
        return; // RabbitMQ's consumer timeout is a node setting
    }
    let b = warren(&["--consumer-timeout-ms", "300"]);
    let q = uniq("timeout");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let calls = Arc::new(AtomicU32::new(0));
    let acked = Arc::new(AtomicU32::new(0));
    let (c2, a2) = (calls.clone(), acked.clone());
    let handle = kit
        .consume(qcfg(&q), move |_d| {
            let (c, a) = (c2.clone(), a2.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                } else {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                Outcome::Ack
            }
        })
        .await;
    kit.publisher(PublisherConfig::default())
        .publish(Message::new("", &q, "slow"))
        .await
        .unwrap();
    eventually("406 recovery", || {
        kit.metrics().channel_recoveries_for("406") >= 1
    })
    .await;
    eventually("redelivered and acked", || {
        acked.load(Ordering::SeqCst) >= 1
    })
    .await;
    handle.shutdown().await;
    kit.shutdown().await;
}

/// With warren's free-disk alarm on, the kit's publish blocks (`KitError::Blocked` at its deadline:
/// the broker holds that publish and sends connection.blocked, so lapin stops writing on that
/// connection); a consumer started only then still gets and acks every message, because its
/// connection is separate. With `shared_connection` the same acks never reach the broker, which
/// shows the test can fail.
async fn blocked_publisher(shared: bool) {
    if external().is_some() {
        return; // needs a resource alarm
    }
    let mut b = warren(&[]);
    let q = uniq("blocked");
    {
        let kit = Kit::start(b.config(), Topology::new().queue(&q));
        let p = kit.publisher(PublisherConfig::default());
        for i in 0..50 {
            p.publish(Message::new("", &q, format!("m{i}")))
                .await
                .unwrap();
        }
        kit.shutdown().await;
    }
    // Free-disk alarm on from the start: publishers are blocked at their first publish.
    b.restart_with(&["--disk-free-limit-bytes", "1000000000000000"]);
    let mut cfg = b.config();
    cfg.shared_connection = shared;
    let kit = Kit::start(cfg, Topology::new().queue(&q));
    let p = kit.publisher(PublisherConfig {
        deadline: Duration::from_millis(700),
        ..Default::default()
    });
    kit.publish_connection()
        .wait(tokio::time::Instant::now() + WAIT)
        .await
        .expect("publish connection up under the alarm");
    let started = Instant::now();
    let r = p.publish(Message::new("", &q, "while blocked")).await;
    assert!(matches!(r, Err(KitError::Blocked(_))), "got {r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(p.blocked(), "the broker told the publish connection");
    let acked = Arc::new(AtomicU32::new(0));
    let a = acked.clone();
    let handle = kit
        .consume(qcfg(&q), move |_d| {
            let a = a.clone();
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                Outcome::Ack
            }
        })
        .await;
    if shared {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            acked.load(Ordering::SeqCst),
            0,
            "nothing consumed on a blocked connection"
        );
        let (_c, ch) = raw(&b.url).await;
        assert_eq!(depth(&ch, &q).await, 50);
        kit.shutdown().await;
        return;
    }
    eventually("all 50 acked", || acked.load(Ordering::SeqCst) == 50).await;
    assert!(p.blocked(), "still blocked while the messages were acked");
    // The consumer's channel closes at shutdown: an unacked message would be requeued.
    handle.shutdown().await;
    let (_c, ch) = raw(&b.url).await;
    assert_eq!(
        depth(&ch, &q).await,
        0,
        "acks reached the broker while publishing was blocked"
    );
    kit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_publisher_does_not_stop_acks() {
    blocked_publisher(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_shared_connection_stops_acks() {
    blocked_publisher(true).await;
}

/// Retries follow the delay ladder, then the DLQ gets the copy with the kit's headers.
async fn retry_ladder(b: &Broker, mode: RetryMode) {
    let q = uniq("retry");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let times = Arc::new(Mutex::new(Vec::<(u32, Instant)>::new()));
    let t = times.clone();
    let mut cfg = qcfg(&q);
    cfg.retry.mode = mode;
    let handle = kit
        .consume(cfg, move |d| {
            let t = t.clone();
            async move {
                t.lock().unwrap().push((d.attempt, Instant::now()));
                Outcome::Retry(format!("boom {}", d.attempt))
            }
        })
        .await;
    eventually("consuming", || {
        kit.health().report().consumers.get(&q) == Some(&true)
    })
    .await;
    kit.publisher(PublisherConfig::default())
        .publish(Message::new("", &q, "fails").with_id("r-1"))
        .await
        .unwrap();
    eventually("3 attempts", || times.lock().unwrap().len() == 3).await;
    let ts = times.lock().unwrap().clone();
    assert_eq!(ts.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    let gap1 = ts[1].1 - ts[0].1;
    let gap2 = ts[2].1 - ts[1].1;
    assert!(
        gap1 >= Duration::from_millis(280) && gap1 < Duration::from_millis(1500),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(580) && gap2 < Duration::from_millis(2000),
        "{gap2:?}"
    );
    let (_c, ch) = raw(&b.url).await;
    let dlq = retry::dlq_name(&q);
    let mut dead = None;
    for _ in 0..100 {
        dead = ch.basic_get(&dlq, Default::default()).await.unwrap();
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = dead.expect("message in the DLQ");
    let h = dead.delivery.properties.headers().clone().unwrap();
    assert_eq!(message::header_u64(&h, retry::ATTEMPTS_HEADER), Some(3));
    assert_eq!(
        message::header_str(&h, retry::LAST_ERROR_HEADER).as_deref(),
        Some("boom 3")
    );
    let first = message::header_u64(&h, retry::FIRST_FAILURE_HEADER).unwrap();
    assert!(message::now_millis() - first < 10_000);
    assert_eq!(
        dead.delivery
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "r-1"
    );
    // The counters move once the DLQ publish is confirmed, which can be
    // just after the message is already readable there.
    eventually("retries and dead-letter counted", || {
        kit.metrics().retried.get() == 2 && kit.metrics().dead_lettered.get() == 1
    })
    .await;
    handle.shutdown().await;
    kit.shutdown().await;
    let mut qs = vec![q.clone(), dlq];
    for d in [300, 600] {
        qs.push(retry::ladder_queue(&q, Duration::from_millis(d)));
    }
    cleanup(&b.url, &qs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_ladder_auto_detected() {
    let b = broker();
    let kit = Kit::start(b.config(), Topology::new());
    let mode = kit.resolve_retry_mode(RetryMode::Auto).await;
    if external().is_none() {
        assert_eq!(
            mode,
            RetryMode::DelayedExchange,
            "warren has x-delayed-message"
        );
    }
    kit.shutdown().await;
    retry_ladder(&b, RetryMode::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_ladder_ttl_queues() {
    retry_ladder(&broker(), RetryMode::TtlLadder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_straight_to_the_dlq() {
    let b = broker();
    let q = uniq("poison");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handle = kit
        .consume(qcfg(&q), move |_d| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Outcome::Poison("bad json".into()) }
        })
        .await;
    kit.publisher(PublisherConfig::default())
        .publish(Message::new("", &q, "{"))
        .await
        .unwrap();
    let (_c, ch) = raw(&b.url).await;
    let dlq = retry::dlq_name(&q);
    let mut got = None;
    for _ in 0..200 {
        got = ch.basic_get(&dlq, Default::default()).await.unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = got
        .expect("dead-lettered")
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap();
    assert_eq!(
        message::header_str(&h, retry::LAST_ERROR_HEADER).as_deref(),
        Some("bad json")
    );
    assert_eq!(message::header_u64(&h, retry::ATTEMPTS_HEADER), Some(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    handle.shutdown().await;
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), dlq]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_dedups_across_a_worker_restart() {
    let b = broker();
    let q = uniq("inbox");
    let path = std::env::temp_dir().join(format!("{q}.inbox"));
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let p = kit.publisher(PublisherConfig::default());
    let processed = Arc::new(AtomicU32::new(0));
    let icfg = InboxConfig {
        path: path.clone(),
        max_ids: 1000,
        max_age: Duration::from_secs(3600),
    };
    for round in 0..2 {
        let mut cfg = qcfg(&q);
        cfg.inbox = Some(Arc::new(Inbox::open(icfg.clone()).unwrap()));
        let pr = processed.clone();
        let handle = kit
            .consume(cfg, move |_d| {
                pr.fetch_add(1, Ordering::SeqCst);
                async { Outcome::Ack }
            })
            .await;
        p.publish(Message::new("", &q, "order").with_id("order-42"))
            .await
            .unwrap();
        let want = round + 1;
        eventually("settled", || {
            kit.metrics().acked.get() + kit.metrics().duplicates.get() == want
        })
        .await;
        handle.shutdown().await; // worker restart: the next round opens the inbox file again
    }
    assert_eq!(processed.load(Ordering::SeqCst), 1, "processed once");
    assert_eq!(kit.metrics().duplicates.get(), 1);
    kit.shutdown().await;
    let _ = std::fs::remove_file(path);
    cleanup(&b.url, &[q.clone(), retry::dlq_name(&q)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_calls_replies_timeouts_and_no_route() {
    let b = broker();
    let q = uniq("rpc");
    let idle = uniq("rpc-idle");
    let kit = Kit::start(b.config(), Topology::new().queue(&q).queue(&idle));
    let server = kit
        .rpc_server(qcfg(&q), |d| async move {
            let mut r = b"echo:".to_vec();
            r.extend_from_slice(&d.body);
            r
        })
        .await;
    let client = kit.rpc_client();
    eventually("server up", || {
        kit.health().report().consumers.get(&q) == Some(&true)
    })
    .await;
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let c = client.clone();
            let q = q.clone();
            tokio::spawn(async move { c.call("", &q, format!("{i}").as_bytes()).await })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        let reply = c.await.unwrap().unwrap();
        assert_eq!(reply.text(), format!("echo:{i}"));
    }
    let started = Instant::now();
    let r = client
        .call_with_timeout("", &idle, b"x", Duration::from_millis(300))
        .await;
    assert!(matches!(r, Err(KitError::RpcTimeout(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let r = client.call("", &uniq("nobody"), b"x").await;
    assert!(
        matches!(r, Err(KitError::Returned { code: 312, .. })),
        "{r:?}"
    );
    assert_eq!(client.in_flight(), 0);
    server.shutdown().await;
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), idle, retry::dlq_name(&q)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_drain_finishes_in_flight_and_requeues_the_rest() {
    let b = broker();
    let q = uniq("drain");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let p = kit.publisher(PublisherConfig::default());
    for i in 0..10 {
        p.publish(Message::new("", &q, format!("{i}")))
            .await
            .unwrap();
    }
    let started = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let mut cfg = qcfg(&q);
    cfg.concurrency = 2;
    cfg.prefetch = 4;
    cfg.drain_deadline = Duration::from_secs(3);
    let (s, d) = (started.clone(), done.clone());
    let handle = kit
        .consume(cfg, move |_m| {
            let (s, d) = (s.clone(), d.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(400)).await;
                d.fetch_add(1, Ordering::SeqCst);
                Outcome::Ack
            }
        })
        .await;
    eventually("two running", || started.load(Ordering::SeqCst) >= 2).await;
    handle.shutdown().await;
    let finished = done.load(Ordering::SeqCst);
    assert_eq!(
        finished,
        started.load(Ordering::SeqCst),
        "every started handler finished"
    );
    assert_eq!(kit.metrics().acked.get(), finished as u64);
    let (_c, ch) = raw(&b.url).await;
    eventually("rest requeued", || true).await;
    let mut left = 0;
    for _ in 0..50 {
        left = depth(&ch, &q).await;
        if left == 10 - finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 10 - finished);

    // A handler that outlives the drain deadline: its delivery is given back, not failed.
    let mut cfg = qcfg(&q);
    cfg.drain_deadline = Duration::from_millis(200);
    let handle = kit
        .consume(cfg, |_m| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Outcome::Ack
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    handle.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(
        kit.metrics().dead_lettered.get() + kit.metrics().retried.get(),
        0
    );
    let mut left2 = 0;
    for _ in 0..50 {
        left2 = depth(&ch, &q).await;
        if left2 == left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left2, left, "nothing lost");
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), retry::dlq_name(&q)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_round_trips_and_survives_retries() {
    otel::otel();
    let b = broker();
    let q = uniq("trace");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let seen = Arc::new(Mutex::new(Vec::<(u32, Option<TraceContext>)>::new()));
    let s = seen.clone();
    let mut cfg = qcfg(&q);
    cfg.retry.delays = vec![Duration::from_millis(100)];
    let handle = kit
        .consume(cfg, move |d| {
            s.lock().unwrap().push((d.attempt, d.trace_context()));
            async move {
                if d.attempt == 1 {
                    Outcome::Retry("again".into())
                } else {
                    Outcome::Ack
                }
            }
        })
        .await;
    let mut root = TraceContext::new_root();
    root.tracestate = Some("warren=1".into());
    root.baggage = Some("tenant=acme".into());
    kit.publisher(PublisherConfig::default())
        .publish(Message::new("", &q, "t").with_trace(&root))
        .await
        .unwrap();
    eventually("two attempts", || seen.lock().unwrap().len() == 2).await;
    let v = seen.lock().unwrap().clone();
    let first = v[0].1.clone().expect("context extracted");
    assert_eq!(first.trace_id, root.trace_id);
    assert_ne!(first.span_id, root.span_id, "the producer span is a child");
    assert_eq!(first.tracestate.as_deref(), Some("warren=1"));
    assert_eq!(first.baggage.as_deref(), Some("tenant=acme"));
    assert_eq!(v[1].0, 2);
    assert_eq!(
        v[1].1.as_ref(),
        Some(&first),
        "the retry carries the same context"
    );
    handle.shutdown().await;
    kit.shutdown().await;
    cleanup(
        &b.url,
        &[
            q.clone(),
            retry::dlq_name(&q),
            retry::ladder_queue(&q, Duration::from_millis(100)),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let b = broker();
    let q = uniq("metrics");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let handle = kit.consume(qcfg(&q), |_d| async { Outcome::Ack }).await;
    let p = kit.publisher(PublisherConfig::default());
    for i in 0..7 {
        p.publish(Message::new("", &q, format!("{i}")))
            .await
            .unwrap();
    }
    let r = p.publish(Message::new("", &uniq("nowhere"), "x")).await;
    assert!(
        matches!(r, Err(KitError::Returned { code: 312, .. })),
        "{r:?}"
    );
    eventually("acked", || kit.metrics().acked.get() == 7).await;
    let m = kit.metrics();
    assert_eq!(m.published.get(), 8);
    assert_eq!(m.confirmed.get(), 7);
    assert_eq!(m.returned.get(), 1);
    assert_eq!(m.consumed.get(), 7);
    let text = m.render();
    assert!(text.contains("service_kit_published_total 8"), "{text}");
    assert!(text.contains("service_kit_acked_total 7"), "{text}");
    assert!(
        text.contains("service_kit_handler_duration_seconds_count 7"),
        "{text}"
    );
    let h = kit.health().report();
    assert!(h.healthy(), "{h:?}");
    handle.shutdown().await;
    assert!(
        !kit.health().report().healthy(),
        "a stopped consumer is reported"
    );
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), retry::dlq_name(&q)]).await;
}
