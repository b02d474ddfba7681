//! Broker-wide counters (`global_stats.rs`): they count what no object
//! does, and deleting objects never lowers them.

use amqp_codec::{BasicProperties, Method};

use super::setup;
use crate::testkit::{bodies, Wire};

#[test]
fn global_counters_survive_queue_deletion_and_channel_close() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", Default::default());
    let props = BasicProperties::default();
    // Cached publishes (one read) count like general-path ones.
    let mut w = Wire::new();
    for _ in 0..4 {
        w = w.publish(1, "", "q", &props, &[0u8; 150]);
    }
    w = w.publish_mandatory(1, "", "nowhere", &props, b"r");
    w = w.publish(1, "", "nowhere", &props, b"d");
    core.input(&c, w);
    assert_eq!(bodies(&c.recv()), ["r"], "the mandatory one is returned");
    let got = core.consume(&mut c, 1, "q", "t", false);
    assert_eq!(bodies(&got).len(), 4);
    // Reject one without requeue (dead-lettered, no DLX), ack the rest.
    core.input(
        &c,
        Wire::new()
            .method(
                1,
                Method::BasicReject(amqp_codec::BasicReject {
                    delivery_tag: 1,
                    requeue: false,
                }),
            )
            .method(
                1,
                Method::BasicAck(amqp_codec::BasicAck {
                    delivery_tag: 4,
                    multiple: true,
                }),
            ),
    );
    let before = core.broker.snapshot();
    let g = &before.global;
    assert_eq!(
        (g.routed, g.unroutable_returned, g.unroutable_dropped),
        (4, 1, 1)
    );
    assert_eq!(g.size_buckets[0..3], [2, 4, 0]);
    assert_eq!(g.dead_lettered[0][2], [1, 0], "rejected, no DLX: disabled");
    assert_eq!(
        (g.channels_opened, g.queues_created, g.queues_declared),
        (1, 1, 1)
    );
    assert_eq!(g.retired_queues[0].ack, 0, "nothing retired yet");
    core.input(
        &c,
        Wire::new()
            .method(
                1,
                Method::QueueDelete(amqp_codec::QueueDelete {
                    queue: "q".into(),
                    ..Default::default()
                }),
            )
            .method(1, Method::ChannelClose(Default::default())),
    );
    let after = core.broker.snapshot();
    assert!(after.queues.is_empty() && after.channels.is_empty());
    let g = &after.global;
    assert_eq!(g.queues_deleted, 1);
    assert_eq!(
        (
            g.retired_queues[0].publish,
            g.retired_queues[0].deliver,
            g.retired_queues[0].ack
        ),
        (4, 4, 3)
    );
    assert_eq!(g.retired_channels.publish, 6);
    assert_eq!(g.retired_channels.deliver, 4);
    // A second cleanup of the same connection adds nothing.
    core.disconnect(c);
    assert_eq!(core.broker.snapshot().global.retired_channels.publish, 6);
}
