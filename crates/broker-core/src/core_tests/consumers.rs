//! Consumer priorities, single active consumer and the acknowledgement
//! timeout, on the test clock.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{bodies, Core, Out, Wire};

#[test]
fn ack_timeout_closes_the_channel_and_requeues_on_the_test_clock() {
    let mut core = Core::new(crate::CoreConfig {
        consumer_timeout_ms: 1_000,
        ..Default::default()
    });
    let mut c = core.connect();
    core.open_channel(&mut c, 1);
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &BasicProperties::default(), b"slow"),
    );
    assert_eq!(
        bodies(&core.consume(&mut c, 2, "q", "k", false)),
        vec!["slow"]
    );
    core.advance_ms(900);
    assert!(c.recv().is_empty(), "not yet");
    core.advance_ms(200);
    let (code, text) = channel_close(&c.recv()).expect("channel closed by the tick");
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 1000 ms. This timeout value can be configured, see consumers doc guide to learn more"
    );
    let o = get(&mut core, &mut c, "q", true).expect("requeued");
    assert!(redelivered(&o));
}

#[test]
fn higher_priority_consumer_first_lower_when_it_is_full() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    let consume = |tag: &str, prio: i32| {
        Method::BasicConsume(amqp_codec::BasicConsume {
            queue: ShortStr::from("q"),
            consumer_tag: ShortStr::from(tag),
            arguments: table(&[("x-priority", FieldValue::I32(prio))]),
            ..Default::default()
        })
    };
    let qos = Method::BasicQos(amqp_codec::BasicQos {
        prefetch_count: 1,
        ..Default::default()
    });
    assert_eq!(core.call(&mut c, 1, qos).len(), 1);
    assert_eq!(core.call(&mut c, 2, consume("low", 0)).len(), 1);
    assert_eq!(core.call(&mut c, 1, consume("high", 5)).len(), 1);
    let mut w = Wire::new();
    for b in ["a", "b", "c"] {
        w = w.publish(1, "", "q", &BasicProperties::default(), b.as_bytes());
    }
    core.input(&c, w);
    let got = c.recv();
    let tags: Vec<String> = got
        .iter()
        .map(|o| match o.method() {
            Method::BasicDeliver(d) => d.consumer_tag.to_string(),
            m => panic!("{m:?}"),
        })
        .collect();
    // "high" has prefetch 1: one message, then the rest go to "low".
    assert_eq!(tags, vec!["high", "low", "low"]);
}

#[test]
fn single_active_consumer_hands_over_on_cancel() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[("x-single-active-consumer", FieldValue::Bool(true))]),
    );
    assert!(core.consume(&mut c, 1, "q", "first", true).is_empty());
    assert!(core.consume(&mut c, 2, "q", "second", true).is_empty());
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &BasicProperties::default(), b"1"),
    );
    let got = c.recv();
    assert!(
        matches!(got.as_slice(), [Out::Content { channel: 1, .. }]),
        "{got:?}"
    );
    let cancel = Method::BasicCancel(amqp_codec::BasicCancel {
        consumer_tag: ShortStr::from("first"),
        no_wait: false,
    });
    assert_eq!(core.call(&mut c, 1, cancel).len(), 1);
    core.input(
        &c,
        Wire::new().publish(1, "", "q", &BasicProperties::default(), b"2"),
    );
    let got = c.recv();
    assert!(
        matches!(got.as_slice(), [Out::Content { channel: 2, .. }]),
        "{got:?}"
    );
}
