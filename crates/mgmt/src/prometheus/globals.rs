//! Families that never decrease or describe the whole node: the
//! `rabbitmq_global_*` counters, the message-size histogram, churn, object
//! totals and alarms. Counters are "live objects + retired" (see
//! `broker_core::global_stats`), so deleting a queue or closing a channel
//! never makes them go back.

use broker_core::global_stats::{
    GlobalStats, DEAD_LETTER_REASONS, MESSAGE_SIZE_BUCKETS_BYTES, QUEUE_TYPES_MAX,
    QUEUE_TYPE_LABELS,
};
use broker_core::inspect::Snapshot;
use broker_core::stats::{ChannelStats, QueueStats};

use super::text::{Kind, Text};

/// The only protocol warren speaks.
const PROTOCOL: &str = "amqp091";

/// Counters summed over live and retired objects.
pub struct Totals {
    /// Per queue type (index as `QUEUE_TYPE_LABELS`).
    pub queues: [QueueStats; QUEUE_TYPES_MAX],
    /// Over every channel.
    pub channels: ChannelStats,
    /// Channels that have published (RabbitMQ's publishers).
    pub publishers: u64,
}

impl Totals {
    /// Sums `s`'s live objects onto its retired counters.
    pub fn of(s: &Snapshot) -> Totals {
        let g = &s.global;
        let mut t = Totals {
            queues: g.retired_queues,
            channels: g.retired_channels,
            publishers: 0,
        };
        for q in &s.queues {
            let r = &mut t.queues[usize::from(q.kind == "quorum")];
            let x = &q.stats;
            r.publish += x.publish;
            r.deliver += x.deliver;
            r.deliver_no_ack += x.deliver_no_ack;
            r.get += x.get;
            r.get_no_ack += x.get_no_ack;
            r.get_empty += x.get_empty;
            r.redeliver += x.redeliver;
            r.ack += x.ack;
        }
        for c in &s.channels {
            let (r, x) = (&mut t.channels, &c.stats);
            r.publish += x.publish;
            r.deliver += x.deliver;
            r.deliver_no_ack += x.deliver_no_ack;
            r.get += x.get;
            r.get_no_ack += x.get_no_ack;
            r.redeliver += x.redeliver;
            r.ack += x.ack;
            t.publishers += u64::from(x.publish > 0);
        }
        t
    }
}

/// `rabbitmq_global_*`, by protocol and by protocol and queue type.
pub fn global(t: &mut Text, s: &Snapshot, tot: &Totals) {
    let g: &GlobalStats = &s.global;
    let p = [("protocol", PROTOCOL)];
    let by_protocol: [(&str, &str, u64); 6] = [
        ("global_messages_received_total", "Total number of messages received from publishers", tot.channels.publish),
        ("global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations", g.received_confirm),
        ("global_messages_routed_total", "Total number of messages routed to queues or streams", g.routed),
        ("global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", g.unroutable_dropped),
        ("global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", g.unroutable_returned),
        ("global_messages_confirmed_total", "Total number of messages confirmed to publishers", g.confirmed),
    ];
    for (name, help, v) in by_protocol {
        t.family(name, Kind::Counter, help);
        t.sample(name, &p, v as f64);
    }
    type Pick = fn(&QueueStats) -> u64;
    let by_type: [(&str, &str, Pick); 8] = [
        ("global_messages_delivered_total", "Total number of messages delivered to consumers", |q| q.deliver + q.deliver_no_ack + q.get + q.get_no_ack),
        ("global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", |q| q.deliver),
        ("global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", |q| q.deliver_no_ack),
        ("global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", |q| q.get),
        ("global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", |q| q.get_no_ack),
        ("global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", |q| q.get_empty),
        ("global_messages_redelivered_total", "Total number of messages redelivered to consumers", |q| q.redeliver),
        ("global_messages_acknowledged_total", "Total number of message acknowledgements received from consumers", |q| q.ack),
    ];
    for (name, help, pick) in by_type {
        t.family(name, Kind::Counter, help);
        for (i, q) in tot.queues.iter().enumerate() {
            let labels = [("protocol", PROTOCOL), ("queue_type", QUEUE_TYPE_LABELS[i])];
            t.sample(name, &labels, pick(q) as f64);
        }
    }
    t.family(
        "global_publishers",
        Kind::Gauge,
        "Current number of publishers",
    );
    t.sample("global_publishers", &p, tot.publishers as f64);
    t.family(
        "global_consumers",
        Kind::Gauge,
        "Current number of consumers",
    );
    t.sample("global_consumers", &p, s.consumers.len() as f64);
    for (r, reason) in DEAD_LETTER_REASONS.iter().enumerate() {
        let name = format!("global_messages_dead_lettered_{reason}_total");
        t.family(
            &name,
            Kind::Counter,
            &format!("Total number of messages dead-lettered due to {reason}"),
        );
        for (i, per_reason) in g.dead_lettered.iter().enumerate() {
            for (k, strategy) in ["disabled", "at_most_once"].iter().enumerate() {
                let labels = [
                    ("queue_type", QUEUE_TYPE_LABELS[i]),
                    ("dead_letter_strategy", *strategy),
                ];
                t.sample(&name, &labels, per_reason[r][k] as f64);
            }
        }
    }
    message_sizes(t, g);
}

/// `rabbitmq_message_size_bytes` with RabbitMQ's buckets (integer `le`).
fn message_sizes(t: &mut Text, g: &GlobalStats) {
    let name = "message_size_bytes";
    t.family(
        name,
        Kind::Histogram,
        "Size of messages received from publishers",
    );
    let mut cumulative = 0u64;
    for (i, n) in g.size_buckets.iter().enumerate() {
        cumulative += n;
        let le = MESSAGE_SIZE_BUCKETS_BYTES
            .get(i)
            .map_or_else(|| "+Inf".to_string(), u64::to_string);
        let labels = [("protocol", PROTOCOL), ("le", le.as_str())];
        t.sample("message_size_bytes_bucket", &labels, cumulative as f64);
    }
    let p = [("protocol", PROTOCOL)];
    t.sample("message_size_bytes_sum", &p, g.size_sum_bytes as f64);
    t.sample("message_size_bytes_count", &p, cumulative as f64);
}

/// `connection_churn_metrics`: closed = opened − open now.
pub fn churn(t: &mut Text, s: &Snapshot) {
    let g = &s.global;
    let rows: [(&str, &str, u64); 7] = [
        (
            "connections_opened_total",
            "Total number of connections opened",
            g.connections_opened,
        ),
        (
            "connections_closed_total",
            "Total number of connections closed or terminated",
            g.connections_opened
                .saturating_sub(s.connections.len() as u64),
        ),
        (
            "channels_opened_total",
            "Total number of channels opened",
            g.channels_opened,
        ),
        (
            "channels_closed_total",
            "Total number of channels closed",
            g.channels_opened.saturating_sub(s.channels.len() as u64),
        ),
        (
            "queues_declared_total",
            "Total number of queues declared",
            g.queues_declared,
        ),
        (
            "queues_created_total",
            "Total number of queues created",
            g.queues_created,
        ),
        (
            "queues_deleted_total",
            "Total number of queues deleted",
            g.queues_deleted,
        ),
    ];
    for (name, help, v) in rows {
        t.single(name, Kind::Counter, help, v as f64);
    }
}

/// Object counts (`rabbitmq_connections`, ...), as on `/metrics`.
pub fn object_totals(t: &mut Text, s: &Snapshot) {
    t.single(
        "connections",
        Kind::Gauge,
        "Connections currently open",
        s.connections.len() as f64,
    );
    t.single(
        "channels",
        Kind::Gauge,
        "Channels currently open",
        s.channels.len() as f64,
    );
    t.single(
        "consumers",
        Kind::Gauge,
        "Consumers currently connected",
        s.consumers.len() as f64,
    );
    t.single(
        "queues",
        Kind::Gauge,
        "Queues available",
        s.queues.len() as f64,
    );
}

/// The alarm gauges (0 or 1).
pub fn alarms(t: &mut Text, s: &Snapshot) {
    let alarm = s.alarm.as_deref().unwrap_or("");
    t.single(
        "alarms_file_descriptor_limit",
        Kind::Untyped,
        "is 1 if file descriptor limit alarm is in effect",
        0.0,
    );
    t.single(
        "alarms_free_disk_space_watermark",
        Kind::Untyped,
        "is 1 if free disk space watermark alarm is in effect",
        f64::from(u8::from(alarm.contains("disk"))),
    );
    t.single(
        "alarms_memory_used_watermark",
        Kind::Untyped,
        "is 1 if VM memory watermark alarm is in effect",
        f64::from(u8::from(alarm.contains("memory"))),
    );
}
