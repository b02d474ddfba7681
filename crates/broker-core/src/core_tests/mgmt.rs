//! Statistics counters, the management snapshot and the management entry
//! points (`stats.rs`, `inspect.rs`, `direct.rs`).

use amqp_codec::{BasicProperties, Method};

use super::{declare_exchange, setup};
use crate::direct::{BindingSpec, ExchangeSpec, GetAckMode, QueueSpec};
use crate::testkit::{bodies, Wire};

fn queue<'a>(s: &'a crate::inspect::Snapshot, name: &str) -> &'a crate::inspect::QueueView {
    s.queues
        .iter()
        .find(|q| q.name.as_str() == name)
        .expect("queue in snapshot")
}

#[test]
fn counters_follow_publish_deliver_ack_and_cached_publishes() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", Default::default());
    // One socket read of 5 publishes: the first takes the general path,
    // the others the publish cache (counted once at the end of the run).
    let mut w = Wire::new();
    for i in 0..5 {
        w = w.publish(
            1,
            "",
            "q",
            &BasicProperties::default(),
            format!("m{i}").as_bytes(),
        );
    }
    core.input(&c, w);
    let s = core.broker.snapshot();
    let q = queue(&s, "q");
    assert_eq!((q.ready, q.stats.publish), (5, 5));
    let dx = s.exchanges.iter().find(|x| x.name.is_empty()).unwrap();
    assert_eq!(dx.stats.publish_in, 5, "cached publishes counted");
    let ch = s.channels.iter().find(|ch| ch.number == 1).unwrap();
    assert_eq!(ch.stats.publish, 5);
    let got = core.consume(&mut c, 1, "q", "t", false);
    assert_eq!(bodies(&got).len(), 5);
    let s = core.broker.snapshot();
    let q = queue(&s, "q");
    assert_eq!(
        (q.ready, q.unacked, q.stats.deliver, q.consumers),
        (0, 5, 5, 1)
    );
    assert_eq!(s.consumers.len(), 1);
    core.input(
        &c,
        Wire::new().method(
            1,
            Method::BasicAck(amqp_codec::BasicAck {
                delivery_tag: 5,
                multiple: true,
            }),
        ),
    );
    let s = core.broker.snapshot();
    let q = queue(&s, "q");
    assert_eq!((q.unacked, q.stats.ack), (0, 5));
    assert_eq!(s.channels[0].stats.ack, 5);
    assert_eq!(s.connections.len(), 1, "clients listed");
}

#[test]
fn unroutable_publishes_are_counted_on_the_exchange() {
    let (mut core, mut c) = setup();
    declare_exchange(&mut core, &mut c, "x", "direct");
    let mut w = Wire::new();
    for _ in 0..3 {
        w = w.publish(1, "x", "nowhere", &BasicProperties::default(), b"m");
    }
    core.input(&c, w);
    let s = core.broker.snapshot();
    let x = s.exchanges.iter().find(|x| x.name.as_str() == "x").unwrap();
    assert_eq!((x.stats.publish_in, x.stats.unroutable), (3, 3));
}

#[test]
fn management_calls_use_the_handlers_rules_and_leave_no_session() {
    let (mut core, _c) = setup();
    let b = &mut core.broker;
    let spec = QueueSpec {
        name: "mq".into(),
        durable: true,
        ..Default::default()
    };
    assert_eq!(b.mgmt_declare_queue("/", "guest", spec.clone()), Ok(true));
    assert_eq!(b.mgmt_declare_queue("/", "guest", spec), Ok(false));
    let e = b
        .mgmt_declare_queue(
            "/",
            "guest",
            QueueSpec {
                name: "mq".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.text.contains("inequivalent arg 'durable'"), "{}", e.text);
    let e = b
        .mgmt_declare_queue(
            "/",
            "guest",
            QueueSpec {
                name: "amq.x".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code, amqp_codec::reply::ACCESS_REFUSED);
    let x = ExchangeSpec {
        name: "mx".into(),
        kind: "fanout".into(),
        ..Default::default()
    };
    assert_eq!(b.mgmt_declare_exchange("/", "guest", x), Ok(true));
    let bind = BindingSpec {
        source: "mx".into(),
        destination: "mq".into(),
        to_queue: true,
        ..Default::default()
    };
    assert_eq!(b.mgmt_binding("/", "guest", bind.clone(), true), Ok(()));
    assert_eq!(
        b.mgmt_publish("/", "guest", "mx", "", &[0, 0], b"hello"),
        Ok(true)
    );
    assert_eq!(
        b.mgmt_publish("/", "guest", "", "none", &[0, 0], b"x"),
        Ok(false)
    );
    assert!(
        b.mgmt_delete_exchange("/", "guest", "mx", true).is_err(),
        "if-unused"
    );
    // Requeued by the session's end: seen again, redelivered.
    let got = b
        .mgmt_get("/", "guest", "mq", 5, GetAckMode::AckRequeueTrue)
        .unwrap();
    assert_eq!(
        (got.len(), got[0].body.as_ref(), got[0].redelivered),
        (1, &b"hello"[..], false)
    );
    let got = b
        .mgmt_get("/", "guest", "mq", 5, GetAckMode::AckRequeueFalse)
        .unwrap();
    assert_eq!((got.len(), got[0].redelivered), (1, true));
    assert!(b
        .mgmt_get("/", "guest", "mq", 5, GetAckMode::AckRequeueFalse)
        .unwrap()
        .is_empty());
    assert_eq!(b.mgmt_binding("/", "guest", bind, false), Ok(()));
    assert_eq!(b.mgmt_delete_exchange("/", "guest", "mx", true), Ok(()));
    assert_eq!(b.mgmt_purge_queue("/", "guest", "mq"), Ok(()));
    assert_eq!(b.mgmt_delete_queue("/", "guest", "mq", false, true), Ok(()));
    assert!(b
        .mgmt_delete_queue("/", "guest", "mq", false, false)
        .is_err());
    assert!(b
        .mgmt_declare_queue("nope", "guest", QueueSpec::default())
        .is_err());
    let s = b.snapshot();
    assert_eq!(s.connections.len(), 1, "management sessions are not listed");
    assert_eq!(b.sessions.conns.len(), 1, "and none is left behind");
}

#[test]
fn closing_a_connection_from_the_api_sends_320_with_the_reason() {
    let (mut core, mut c) = setup();
    let id = core.broker.snapshot().connections[0].id;
    assert!(core.broker.mgmt_close_connection(id, "bye"));
    core.broker.flush();
    let got = c.recv();
    let text = format!("{got:?}");
    assert!(
        text.contains("320") && text.contains("CONNECTION_FORCED - bye"),
        "{text}"
    );
    assert!(!core.broker.mgmt_close_connection(9999, "x"));
}
