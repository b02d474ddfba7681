//! Queue, exchange, channel and connection families: summed without labels
//! on `/metrics`, one series per object (RabbitMQ's labels) on
//! `/metrics/per-object` and `/metrics/detailed`.

use broker_core::inspect::{ChannelView, ConnView, ExchangeView, QueueView, Snapshot};

use super::text::{Kind, Text};
use super::Select;

/// RabbitMQ labels channel and connection series with an Erlang pid; ours
/// are pid-shaped and stable: `<0.CONN.CHANNEL>` (channel 0 = the connection).
fn pid(conn: u64, ch: u16) -> String {
    format!("<0.{conn}.{ch}>")
}

/// Writes one family over `items`: a sum when `sel.aggregate`, else one
/// labelled sample per item.
fn family<T>(
    t: &mut Text,
    sel: &Select,
    items: &[&T],
    (name, kind, help): (&str, Kind, &str),
    labels: impl Fn(&T) -> Vec<(&'static str, String)>,
    value: impl Fn(&T) -> u64,
) {
    t.family(name, kind, help);
    if sel.aggregate {
        let sum: u64 = items.iter().map(|i| value(i)).sum();
        t.sample(name, &[], sum as f64);
        return;
    }
    for i in items {
        let l = labels(i);
        let refs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        t.sample(name, &refs, value(i) as f64);
    }
}

/// How a queue family's value is read.
type QPick = fn(&QueueView) -> u64;

fn q_labels(q: &QueueView) -> Vec<(&'static str, String)> {
    vec![
        ("vhost", q.vhost.to_string()),
        ("queue", q.name.to_string()),
    ]
}

/// The queue families selected.
pub fn queues(t: &mut Text, sel: &Select, s: &Snapshot) {
    let qs: Vec<&QueueView> = s.queues.iter().filter(|q| sel.vhost(&q.vhost)).collect();
    if sel.family("queue_coarse_metrics") {
        let rows: [(&str, &str, QPick); 3] = [
            (
                "queue_messages_ready",
                "Messages ready to be delivered to consumers",
                |q| q.ready,
            ),
            (
                "queue_messages_unacked",
                "Messages delivered to consumers but not yet acknowledged",
                |q| q.unacked,
            ),
            (
                "queue_messages",
                "Sum of ready and unacknowledged messages - total queue depth",
                |q| q.ready + q.unacked,
            ),
        ];
        for (name, help, v) in rows {
            family(t, sel, &qs, (name, Kind::Gauge, help), q_labels, v);
        }
    }
    if sel.family("queue_consumer_count") || sel.family("queue_metrics") {
        let help = "Consumers on a queue";
        family(
            t,
            sel,
            &qs,
            ("queue_consumers", Kind::Gauge, help),
            q_labels,
            |q| u64::from(q.consumers),
        );
    }
    if sel.family("queue_metrics") {
        let help = "Size in bytes of ready messages";
        family(
            t,
            sel,
            &qs,
            ("queue_messages_ready_bytes", Kind::Gauge, help),
            q_labels,
            |q| q.ready_bytes,
        );
    }
    if sel.family("queue_delivery_metrics") {
        let rows: [(&str, &str, QPick); 8] = [
            ("queue_get_ack_total", "Total number of messages fetched from a queue with basic.get in manual acknowledgement mode", |q| q.stats.get),
            ("queue_get_total", "Total number of messages fetched from a queue with basic.get in automatic acknowledgement mode", |q| q.stats.get_no_ack),
            ("queue_messages_delivered_ack_total", "Total number of messages delivered from a queue to consumers in manual acknowledgement mode", |q| q.stats.deliver),
            ("queue_messages_delivered_total", "Total number of messages delivered from a queue to consumers in automatic acknowledgement mode", |q| q.stats.deliver_no_ack),
            ("queue_messages_redelivered_total", "Total number of messages redelivered from a queue to consumers", |q| q.stats.redeliver),
            ("queue_messages_acked_total", "Total number of messages acknowledged by consumers on a queue", |q| q.stats.ack),
            ("queue_get_empty_total", "Total number of times basic.get operations fetched no message on a queue", |q| q.stats.get_empty),
            ("queue_messages_published_total", "Total number of messages published to queues", |q| q.stats.publish),
        ];
        for (name, help, v) in rows {
            family(t, sel, &qs, (name, Kind::Counter, help), q_labels, v);
        }
    }
    if sel.info && sel.family("queue_coarse_metrics") {
        t.family("queue_info", Kind::Gauge, "Queue information");
        for q in &qs {
            let qt = if q.kind == "quorum" {
                "rabbit_quorum_queue"
            } else {
                "rabbit_classic_queue"
            };
            let labels = [
                ("vhost", &*q.vhost),
                ("queue", q.name.as_str()),
                ("queue_type", qt),
                ("membership", "leader"),
            ];
            t.sample("queue_info", &labels, 1.0);
        }
    }
}

/// `exchange_metrics`.
pub fn exchanges(t: &mut Text, sel: &Select, s: &Snapshot) {
    if !sel.family("exchange_metrics") {
        return;
    }
    let xs: Vec<&ExchangeView> = s.exchanges.iter().filter(|x| sel.vhost(&x.vhost)).collect();
    let labels = |x: &ExchangeView| {
        vec![
            ("vhost", x.vhost.to_string()),
            ("exchange", x.name.to_string()),
        ]
    };
    let help = "Total number of messages published into an exchange on a channel";
    family(
        t,
        sel,
        &xs,
        ("exchange_messages_published_total", Kind::Counter, help),
        labels,
        |x| x.stats.publish_in,
    );
}

/// `channel_metrics`, `channel_exchange_metrics`, `channel_queue_metrics`
/// (per channel: warren does not split them by exchange or queue).
pub fn channels(t: &mut Text, sel: &Select, s: &Snapshot) {
    let cs: Vec<&ChannelView> = if sel.vhosts.is_empty() {
        s.channels.iter().collect()
    } else {
        let vhost_of: std::collections::HashMap<u64, &str> =
            s.connections.iter().map(|c| (c.id, &*c.vhost)).collect();
        let keep = |c: &&ChannelView| vhost_of.get(&c.conn).is_some_and(|v| sel.vhost(v));
        s.channels.iter().filter(keep).collect()
    };
    let labels = |c: &ChannelView| vec![("channel", pid(c.conn, c.number))];
    type Pick = fn(&ChannelView) -> u64;
    if sel.family("channel_metrics") {
        let rows: [(&str, &str, Pick); 6] = [
            ("channel_consumers", "Consumers on a channel", |c| {
                u64::from(c.consumers)
            }),
            (
                "channel_messages_unacked",
                "Delivered but not yet acknowledged messages",
                |c| u64::from(c.unacked),
            ),
            (
                "channel_messages_unconfirmed",
                "Published but not yet confirmed messages",
                |c| u64::from(c.unconfirmed),
            ),
            (
                "channel_messages_uncommitted",
                "Messages received in a transaction but not yet committed",
                |c| u64::from(c.uncommitted),
            ),
            (
                "channel_prefetch",
                "Total limit of unacknowledged messages for all consumers on a channel",
                |c| u64::from(c.global_prefetch_count),
            ),
            (
                "consumer_prefetch",
                "Limit of unacknowledged messages for each consumer",
                |c| u64::from(c.prefetch_count),
            ),
        ];
        for (name, help, v) in rows {
            family(t, sel, &cs, (name, Kind::Gauge, help), labels, v);
        }
    }
    if sel.family("channel_exchange_metrics") {
        let help = "Total number of messages published into an exchange on a channel";
        family(
            t,
            sel,
            &cs,
            ("channel_messages_published_total", Kind::Counter, help),
            labels,
            |c| c.stats.publish,
        );
    }
    if sel.family("channel_queue_metrics") {
        let rows: [(&str, &str, Pick); 6] = [
            (
                "channel_get_ack_total",
                "Total number of messages fetched with basic.get in manual acknowledgement mode",
                |c| c.stats.get,
            ),
            (
                "channel_get_total",
                "Total number of messages fetched with basic.get in automatic acknowledgement mode",
                |c| c.stats.get_no_ack,
            ),
            (
                "channel_messages_delivered_ack_total",
                "Total number of messages delivered to consumers in manual acknowledgement mode",
                |c| c.stats.deliver,
            ),
            (
                "channel_messages_delivered_total",
                "Total number of messages delivered to consumers in automatic acknowledgement mode",
                |c| c.stats.deliver_no_ack,
            ),
            (
                "channel_messages_redelivered_total",
                "Total number of messages redelivered to consumers",
                |c| c.stats.redeliver,
            ),
            (
                "channel_messages_acked_total",
                "Total number of messages acknowledged by consumers",
                |c| c.stats.ack,
            ),
        ];
        for (name, help, v) in rows {
            family(t, sel, &cs, (name, Kind::Counter, help), labels, v);
        }
    }
}

/// `connection_coarse_metrics` and `connection_metrics`.
pub fn connections(t: &mut Text, sel: &Select, s: &Snapshot) {
    let cs: Vec<&ConnView> = s
        .connections
        .iter()
        .filter(|c| sel.vhost(&c.vhost))
        .collect();
    let labels = |c: &ConnView| vec![("channel", pid(c.id, 0))];
    type Pick = fn(&ConnView) -> u64;
    if sel.family("connection_coarse_metrics") {
        let rows: [(&str, &str, Pick); 2] = [
            (
                "connection_incoming_bytes_total",
                "Total number of bytes received on a connection",
                |c| c.io.0,
            ),
            (
                "connection_outgoing_bytes_total",
                "Total number of bytes sent on a connection",
                |c| c.io.2,
            ),
        ];
        for (name, help, v) in rows {
            family(t, sel, &cs, (name, Kind::Counter, help), labels, v);
        }
    }
    if sel.family("connection_metrics") {
        let rows: [(&str, &str, Kind, Pick); 3] = [
            (
                "connection_incoming_packets_total",
                "Total number of packets received on a connection",
                Kind::Counter,
                |c| c.io.1,
            ),
            (
                "connection_outgoing_packets_total",
                "Total number of packets sent on a connection",
                Kind::Counter,
                |c| c.io.3,
            ),
            (
                "connection_channels",
                "Channels on a connection",
                Kind::Gauge,
                |c| u64::from(c.channels),
            ),
        ];
        for (name, help, kind, v) in rows {
            family(t, sel, &cs, (name, kind, help), labels, v);
        }
    }
}
