//! Dispatch: round-robin, per-consumer and per-channel prefetch, the socket
//! write budget, basic.get counts and cancel.

use amqp_codec::{BasicProperties, FieldTable, Method, ShortStr};

use super::*;
use crate::testkit::{bodies, Out, Wire};

fn publish_n(core: &mut Core, c: &Client, q: &str, n: usize) {
    let mut w = Wire::new();
    for i in 0..n {
        w = w.publish(
            1,
            "",
            q,
            &BasicProperties::default(),
            format!("m{i}").as_bytes(),
        );
    }
    core.input(c, w);
}

fn qos(core: &mut Core, c: &mut Client, ch: u16, count: u16, global: bool) {
    let got = core.call(
        c,
        ch,
        Method::BasicQos(amqp_codec::BasicQos {
            prefetch_count: count,
            global,
            ..Default::default()
        }),
    );
    assert!(matches!(
        got.as_slice(),
        [Out::Method(_, Method::BasicQosOk(_))]
    ));
}

fn ack(core: &mut Core, c: &mut Client, ch: u16, tag: u64, multiple: bool) -> Vec<Out> {
    core.call(
        c,
        ch,
        Method::BasicAck(amqp_codec::BasicAck {
            delivery_tag: tag,
            multiple,
        }),
    )
}

#[test]
fn round_robin_between_two_consumers() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    assert!(core.consume(&mut c, 1, "q", "a", true).is_empty());
    assert!(core.consume(&mut c, 2, "q", "b", true).is_empty());
    publish_n(&mut core, &c, "q", 4);
    let got = c.recv();
    let per: Vec<(u16, String)> = got
        .iter()
        .map(|o| match o {
            Out::Content { channel, body, .. } => {
                (*channel, String::from_utf8_lossy(body).into_owned())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        per,
        vec![
            (1, "m0".into()),
            (2, "m1".into()),
            (1, "m2".into()),
            (2, "m3".into())
        ]
    );
}

#[test]
fn prefetch_limits_unacked_and_ack_releases_more() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    qos(&mut core, &mut c, 1, 2, false);
    publish_n(&mut core, &c, "q", 5);
    let first = core.consume(&mut c, 1, "q", "k", false);
    assert_eq!(bodies(&first), vec!["m0", "m1"]);
    let tags: Vec<u64> = first.iter().map(delivery_tag).collect();
    assert_eq!(tags, vec![1, 2]);
    let more = ack(&mut core, &mut c, 1, 2, true);
    assert_eq!(bodies(&more), vec!["m2", "m3"]);
    let more = ack(&mut core, &mut c, 1, 3, false);
    assert_eq!(bodies(&more), vec!["m4"]);
}

#[test]
fn global_prefetch_is_shared_by_the_channel() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q1", FieldTable::new());
    core.declare_queue(&mut c, 1, "q2", FieldTable::new());
    qos(&mut core, &mut c, 1, 3, true);
    publish_n(&mut core, &c, "q1", 2);
    publish_n(&mut core, &c, "q2", 2);
    let a = core.consume(&mut c, 1, "q1", "a", false);
    let b = core.consume(&mut c, 1, "q2", "b", false);
    assert_eq!(a.len() + b.len(), 3, "{a:?} {b:?}");
}

#[test]
fn full_socket_holds_deliveries_until_writable() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    assert!(core.consume(&mut c, 1, "q", "k", true).is_empty());
    c.set_unwritten_bytes(usize::MAX / 2);
    publish_n(&mut core, &c, "q", 3);
    assert!(c.recv().is_empty(), "nothing goes to a full socket");
    c.set_unwritten_bytes(0);
    core.broker.on_writable(c.id);
    core.broker.flush();
    assert_eq!(bodies(&c.recv()), vec!["m0", "m1", "m2"]);
}

#[test]
fn get_reports_remaining_count_and_get_empty() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_n(&mut core, &c, "q", 2);
    let o = get(&mut core, &mut c, "q", true).expect("get-ok");
    match o.method() {
        Method::BasicGetOk(g) => assert_eq!(g.message_count, 1),
        m => panic!("{m:?}"),
    }
    assert!(get(&mut core, &mut c, "q", true).is_some());
    assert!(get(&mut core, &mut c, "q", true).is_none());
}

#[test]
fn cancel_stops_deliveries() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    assert!(core.consume(&mut c, 1, "q", "k", true).is_empty());
    let got = core.call(
        &mut c,
        1,
        Method::BasicCancel(amqp_codec::BasicCancel {
            consumer_tag: ShortStr::from("k"),
            no_wait: false,
        }),
    );
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::BasicCancelOk(_))]
    ));
    publish_n(&mut core, &c, "q", 1);
    assert!(c.recv().is_empty());
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["m0"]);
}

#[test]
fn queue_delete_cancels_consumers_with_notification() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    assert!(core.consume(&mut c, 2, "q", "k", true).is_empty());
    let got = core.call(
        &mut c,
        1,
        Method::QueueDelete(amqp_codec::QueueDelete {
            queue: ShortStr::from("q"),
            ..Default::default()
        }),
    );
    assert!(got.iter().any(|o| matches!(o, Out::Method(2, Method::BasicCancel(b)) if b.consumer_tag.as_str() == "k")), "{got:?}");
    assert!(got
        .iter()
        .any(|o| matches!(o, Out::Method(1, Method::QueueDeleteOk(_)))));
}
