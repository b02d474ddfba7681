//! TTL (queue and per-message) on a test clock, x-expires, dead-lettering
//! with x-death, and length limits with each overflow mode.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{Out, Wire};

fn publish(core: &mut Core, c: &Client, q: &str, props: &BasicProperties, names: &[&str]) {
    let mut w = Wire::new();
    for b in names {
        w = w.publish(1, "", q, props, b.as_bytes());
    }
    core.input(c, w);
}

fn plain() -> BasicProperties {
    BasicProperties::default()
}

fn x_death_reason(o: &Out) -> String {
    let Out::Content { properties, .. } = o else {
        panic!("{o:?}")
    };
    let headers = properties.headers.as_ref().expect("headers");
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("no x-death: {headers:?}")
    };
    let Some(FieldValue::Table(first)) = deaths.first() else {
        panic!("{deaths:?}")
    };
    first
        .get("reason")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn queue_ttl_expires_on_the_test_clock() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[("x-message-ttl", FieldValue::I32(1000))]),
    );
    publish(&mut core, &c, "q", &plain(), &["old"]);
    core.advance_ms(600);
    publish(&mut core, &c, "q", &plain(), &["new"]);
    core.advance_ms(600);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["new"]);
}

#[test]
fn per_message_expiration_and_dead_letter_reason_expired() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "dlq", FieldTable::new());
    let args = table(&[
        ("x-dead-letter-exchange", long_str("")),
        ("x-dead-letter-routing-key", long_str("dlq")),
    ]);
    core.declare_queue(&mut c, 1, "q", args);
    let short = BasicProperties {
        expiration: Some(ShortStr::from("100")),
        ..Default::default()
    };
    publish(&mut core, &c, "q", &short, &["soon"]);
    publish(&mut core, &c, "q", &plain(), &["stays"]);
    core.advance_ms(50);
    assert!(get(&mut core, &mut c, "dlq", true).is_none());
    core.advance_ms(100);
    let dead = get(&mut core, &mut c, "dlq", true).expect("dead-lettered");
    assert_eq!(dead.body(), b"soon");
    assert_eq!(x_death_reason(&dead), "expired");
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["stays"]);
}

#[test]
fn reject_dead_letters_with_reason_rejected() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "dlq", FieldTable::new());
    let args = table(&[
        ("x-dead-letter-exchange", long_str("")),
        ("x-dead-letter-routing-key", long_str("dlq")),
    ]);
    core.declare_queue(&mut c, 1, "q", args);
    publish(&mut core, &c, "q", &plain(), &["bad"]);
    let m = get(&mut core, &mut c, "q", false).unwrap();
    let got = core.call(
        &mut c,
        1,
        Method::BasicReject(amqp_codec::BasicReject {
            delivery_tag: delivery_tag(&m),
            requeue: false,
        }),
    );
    assert!(got.is_empty());
    let dead = get(&mut core, &mut c, "dlq", true).expect("dead-lettered");
    assert_eq!(x_death_reason(&dead), "rejected");
}

#[test]
fn max_length_drop_head_dead_letters_maxlen() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "dlq", FieldTable::new());
    let args = table(&[
        ("x-max-length", FieldValue::I32(2)),
        ("x-dead-letter-exchange", long_str("")),
        ("x-dead-letter-routing-key", long_str("dlq")),
    ]);
    core.declare_queue(&mut c, 1, "q", args);
    publish(&mut core, &c, "q", &plain(), &["1", "2", "3"]);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["2", "3"]);
    let dead = get(&mut core, &mut c, "dlq", true).expect("dead-lettered");
    assert_eq!(dead.body(), b"1");
    assert_eq!(x_death_reason(&dead), "maxlen");
}

#[test]
fn reject_publish_nacks_in_confirm_mode() {
    let (mut core, mut c) = setup();
    let args = table(&[
        ("x-max-length", FieldValue::I32(1)),
        ("x-overflow", long_str("reject-publish")),
    ]);
    core.declare_queue(&mut c, 1, "q", args);
    let got = core.call(&mut c, 1, Method::ConfirmSelect(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::ConfirmSelectOk(_))]
    ));
    publish(&mut core, &c, "q", &plain(), &["in", "out"]);
    let got = c.recv();
    assert!(
        got.iter()
            .any(|o| matches!(o, Out::Method(1, Method::BasicAck(a)) if a.delivery_tag == 1)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|o| matches!(o, Out::Method(1, Method::BasicNack(n)) if n.delivery_tag == 2)),
        "{got:?}"
    );
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["in"]);
}

#[test]
fn max_length_bytes_counts_bodies() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[("x-max-length-bytes", FieldValue::I32(10))]),
    );
    publish(&mut core, &c, "q", &plain(), &["aaaa", "bbbb", "cccc"]);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["bbbb", "cccc"]);
}

#[test]
fn x_expires_deletes_an_unused_queue() {
    let (mut core, mut c) = setup();
    core.declare_queue(
        &mut c,
        1,
        "q",
        table(&[("x-expires", FieldValue::I32(1000))]),
    );
    core.advance_ms(500);
    assert_eq!(core.queue_depth("q"), Some(0));
    core.advance_ms(600);
    assert_eq!(core.queue_depth("q"), None);
}
