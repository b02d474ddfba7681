//! Smoke test: the generator against the in-process `sink` for one second.
//! Asserts only that messages and confirms flowed (no timing thresholds).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use warren_perf::consumer::{AckMode, ConsumerConfig};
use warren_perf::producer::ProducerConfig;
use warren_perf::sink::{self, SinkCounters};
use warren_perf::throughput::run_timed;
use warren_perf::uri::AmqpUri;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_against_sink_moves_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counters = Arc::new(SinkCounters::default());
    let server = tokio::spawn(sink::serve(listener, counters.clone()));

    let uri = AmqpUri::parse(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f")).unwrap();
    let queues = vec!["smoke".to_string()];
    let producer = ProducerConfig {
        exchange: String::new(),
        routing_key: "smoke".into(),
        size_bytes: 16,
        persistent: true,
        confirm_window: Some(100),
        rate_per_s: 0.0,
        count: None,
        priorities: Some(10),
    };
    let consumer = ConsumerConfig {
        queue: "smoke".into(),
        prefetch: 100,
        ack: AckMode::Multiple(10),
        expect: None,
        record_latency: false,
    };
    let mut queue_args = amqp_codec::FieldTable::new();
    queue_args.insert("x-max-priority".into(), amqp_codec::FieldValue::U8(10));
    let run = run_timed(
        &uri,
        &queues,
        true,
        queue_args,
        vec![producer],
        vec![consumer],
        Duration::from_secs(1),
    );
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run finished")
        .expect("run succeeded");

    let p = result.producers[0];
    assert!(p.published > 0, "nothing published");
    assert!(p.confirmed > 0, "nothing confirmed");
    assert!(p.confirmed <= p.published);
    assert_eq!(p.nacked, 0);
    assert!(
        counters
            .published
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert_eq!(
        counters
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    server.abort();
}
