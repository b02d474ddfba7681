//! The scrape's text from a snapshot (no server, no core).

use std::sync::Arc;

use broker_core::inspect::Snapshot;
use broker_core::Broker;

use super::*;
use crate::AuthProtocol;

struct NoCore;

impl Core for NoCore {
    fn with_core(&self, _f: &mut dyn FnMut(&mut Broker)) {}
}

const IO: StoreIo = StoreIo {
    write_ops: 4,
    write_bytes: 4096,
    write_time_us: 1_500_000,
    sync_ops: 2,
    sync_time_us: 250_000,
};

fn prom(snap: Snapshot) -> Prom {
    let stats = Arc::new(Stats::default());
    stats.publish(snap);
    Prom {
        probe: NodeProbe {
            memory_limit_bytes: 1000,
            disk_free_limit_bytes: 50_000_000,
            disk_free: Arc::new(|| Some(123)),
            store_io: Arc::new(|| Some(IO)),
        },
        stats,
        node: "rabbit@test".into(),
        cluster_id: "rabbitmq-cluster-id-x".into(),
        started: std::time::Instant::now(),
        started_unix_s: 1,
        permits: tokio::sync::Semaphore::new(1),
        auth: false,
        auth_attempts: Arc::default(),
        core: Arc::new(NoCore),
    }
}

fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn aggregated_has_identity_node_and_global_families() {
    let mut s = Snapshot::default();
    s.global.routed = 7;
    s.global.retired_channels.publish = 9;
    s.global.observe_size(50);
    s.global.observe_size(5000);
    s.global.channels_opened = 3;
    let body = render(&prom(s), "aggregated", all(true));
    assert!(body.contains(
        "rabbitmq_identity_info{rabbitmq_node=\"rabbit@test\",rabbitmq_cluster=\"rabbit@test\",\
         rabbitmq_cluster_permanent_id=\"rabbitmq-cluster-id-x\",rabbitmq_endpoint=\"aggregated\"} 1"
    ));
    assert_eq!(
        sample(
            &body,
            "rabbitmq_global_messages_routed_total{protocol=\"amqp091\"}"
        ),
        Some(7.0)
    );
    // Retired channels count: deleting objects never lowers a global counter.
    assert_eq!(
        sample(
            &body,
            "rabbitmq_global_messages_received_total{protocol=\"amqp091\"}"
        ),
        Some(9.0)
    );
    assert_eq!(
        sample(
            &body,
            "rabbitmq_message_size_bytes_bucket{protocol=\"amqp091\",le=\"100\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "rabbitmq_message_size_bytes_bucket{protocol=\"amqp091\",le=\"10000\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &body,
            "rabbitmq_message_size_bytes_bucket{protocol=\"amqp091\",le=\"+Inf\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &body,
            "rabbitmq_message_size_bytes_sum{protocol=\"amqp091\"}"
        ),
        Some(5050.0)
    );
    assert_eq!(sample(&body, "rabbitmq_channels_closed_total"), Some(3.0));
    assert_eq!(
        sample(&body, "rabbitmq_disk_space_available_bytes"),
        Some(123.0)
    );
    assert_eq!(
        sample(&body, "rabbitmq_resident_memory_limit_bytes"),
        Some(1000.0)
    );
    assert_eq!(sample(&body, "rabbitmq_queue_messages_ready"), Some(0.0));
    for name in crate::prometheus::tests::OVERVIEW_METRICS {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} missing from /metrics"
        );
    }
}

#[test]
fn store_io_auth_attempts_and_vm_families() {
    let p = prom(Snapshot::default());
    p.auth_attempts.record(AuthProtocol::Amqp091, true);
    p.auth_attempts.record(AuthProtocol::Amqp091, false);
    p.auth_attempts.record(AuthProtocol::Amqp091, false);
    p.auth_attempts.record(AuthProtocol::Http, true);
    let body = render(&p, "aggregated", all(true));
    assert_eq!(sample(&body, "rabbitmq_io_write_ops_total"), Some(4.0));
    assert_eq!(sample(&body, "rabbitmq_io_write_bytes_total"), Some(4096.0));
    assert_eq!(
        sample(&body, "rabbitmq_io_write_time_seconds_total"),
        Some(1.5)
    );
    assert_eq!(sample(&body, "rabbitmq_io_sync_ops_total"), Some(2.0));
    assert_eq!(
        sample(&body, "rabbitmq_io_sync_time_seconds_total"),
        Some(0.25)
    );
    assert!(body.contains("# TYPE rabbitmq_io_sync_ops_total counter"));
    let amqp = |n: &str| sample(&body, &format!("rabbitmq_{n}{{protocol=\"amqp091\"}}"));
    assert_eq!(amqp("auth_attempts_total"), Some(3.0));
    assert_eq!(amqp("auth_attempts_succeeded_total"), Some(1.0));
    assert_eq!(amqp("auth_attempts_failed_total"), Some(2.0));
    assert_eq!(
        sample(&body, "rabbitmq_auth_attempts_total{protocol=\"http\"}"),
        Some(1.0)
    );
    // This process has at least one thread and has run.
    assert!(sample(&body, "erlang_vm_process_count").is_some_and(|v| v >= 1.0));
    assert!(sample(&body, "rabbitmq_erlang_processes_limit").is_some());
    assert!(body.contains("# TYPE erlang_vm_statistics_runtime_milliseconds counter"));
    assert!(body.contains("# TYPE rabbitmq_erlang_scheduler_context_switches_total counter"));
    // Detailed: only when asked, prefixed; never the VM collectors.
    let sel = Select {
        aggregate: false,
        families: Some(vec!["node_persister_metrics".into()]),
        vhosts: vec![],
        info: true,
    };
    let body = render(&p, "detailed", sel);
    assert_eq!(
        sample(&body, "rabbitmq_detailed_io_sync_ops_total"),
        Some(2.0)
    );
    assert!(!body.contains("auth_attempts"));
    assert!(!body.contains("erlang_vm_"));
}

#[test]
fn detailed_writes_only_the_families_asked_for() {
    let s = Snapshot::default();
    let sel = Select {
        aggregate: false,
        families: Some(vec!["queue_coarse_metrics".into()]),
        vhosts: vec![],
        info: true,
    };
    let body = render(&prom(s), "detailed", sel);
    assert!(body.contains("# TYPE rabbitmq_detailed_queue_messages_ready gauge"));
    assert!(!body.contains("rabbitmq_detailed_channel_consumers"));
    assert!(!body.contains("rabbitmq_global_"));
    assert!(body.contains("rabbitmq_endpoint=\"detailed\""));
}

#[test]
fn query_values_repeat_and_decode() {
    let q = parse_query("family=queue_coarse_metrics&family=queue_metrics&vhost=%2F");
    assert_eq!(q.len(), 3);
    assert_eq!(q[2], ("vhost".to_string(), "/".to_string()));
}

/// Every metric family RabbitMQ-Overview (all revisions, mgmt-api.md §4.5)
/// reads, by its `# TYPE` name.
pub(crate) const OVERVIEW_METRICS: [&str; 47] = [
    "rabbitmq_identity_info",
    "rabbitmq_build_info",
    "rabbitmq_erlang_uptime_seconds",
    "rabbitmq_resident_memory_limit_bytes",
    "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_disk_space_available_bytes",
    "rabbitmq_disk_space_available_limit_bytes",
    "rabbitmq_process_max_fds",
    "rabbitmq_process_open_fds",
    "rabbitmq_queues",
    "rabbitmq_channels",
    "rabbitmq_connections",
    "rabbitmq_global_consumers",
    "rabbitmq_global_publishers",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_global_messages_received_total",
    "rabbitmq_global_messages_routed_total",
    "rabbitmq_global_messages_confirmed_total",
    "rabbitmq_global_messages_received_confirm_total",
    "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_unroutable_returned_total",
    "rabbitmq_message_size_bytes",
    "rabbitmq_global_messages_delivered_total",
    "rabbitmq_global_messages_delivered_consume_auto_ack_total",
    "rabbitmq_global_messages_delivered_consume_manual_ack_total",
    "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_global_messages_delivered_get_auto_ack_total",
    "rabbitmq_global_messages_delivered_get_manual_ack_total",
    "rabbitmq_global_messages_get_empty_total",
    "rabbitmq_queues_declared_total",
    "rabbitmq_queues_created_total",
    "rabbitmq_queues_deleted_total",
    "rabbitmq_channels_opened_total",
    "rabbitmq_channels_closed_total",
    "rabbitmq_connections_opened_total",
    "rabbitmq_connections_closed_total",
    // Older revisions.
    "rabbitmq_consumers",
    "rabbitmq_process_open_tcp_sockets",
    "rabbitmq_process_max_tcp_sockets",
    "rabbitmq_channel_messages_published_total",
    "rabbitmq_channel_messages_unconfirmed",
    "rabbitmq_channel_messages_delivered_total",
    "rabbitmq_channel_messages_acked_total",
    "rabbitmq_channel_consumers",
    "rabbitmq_queue_messages_published_total",
];
