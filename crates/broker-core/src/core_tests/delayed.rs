//! Delayed exchanges (`x-delayed-message`) on the test clock: routed after
//! the delay by the delayed type (not early), in due-time order, with
//! `x-delay` negated; no/zero/negative delays route at once; mandatory is
//! returned at once and still delivered; the alternate exchange gets a copy
//! at once; deleting the exchange drops its pending messages; persistent
//! messages of a durable one are kept by the store and confirmed after the
//! sync.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{Core, Out, Wire};

pub(crate) fn declare_delayed(
    core: &mut Core,
    c: &mut Client,
    name: &str,
    kind: &str,
    durable: bool,
    extra: &[(&str, FieldValue)],
) {
    let mut args = table(extra);
    args.insert(ShortStr::from("x-delayed-type"), long_str(kind));
    let got = core.call(
        c,
        1,
        Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
            exchange: ShortStr::from(name),
            kind: ShortStr::from("x-delayed-message"),
            durable,
            arguments: args,
            ..Default::default()
        }),
    );
    assert!(
        matches!(
            got.as_slice(),
            [Out::Method(1, Method::ExchangeDeclareOk(_))]
        ),
        "{got:?}"
    );
}

pub(crate) fn delay(ms: i64) -> BasicProperties {
    BasicProperties {
        headers: Some(table(&[("x-delay", FieldValue::I64(ms))])),
        ..Default::default()
    }
}

fn x_delay(o: &Out) -> Option<FieldValue> {
    let Out::Content { properties, .. } = o else {
        return None;
    };
    properties.headers.as_ref()?.get("x-delay").cloned()
}

#[test]
fn routes_by_each_delayed_type_after_the_delay_not_before() {
    for kind in ["direct", "fanout", "topic", "headers"] {
        let (mut core, mut c) = setup();
        declare_delayed(&mut core, &mut c, "dx", kind, false, &[]);
        core.declare_queue(&mut c, 1, "q", FieldTable::new());
        let (key, args) = match kind {
            "topic" => ("a.*", FieldTable::new()),
            "headers" => ("", table(&[("h", long_str("v"))])),
            _ => ("a.b", FieldTable::new()),
        };
        bind(&mut core, &mut c, "q", "dx", key, args);
        let mut props = delay(400);
        if let Some(h) = props.headers.as_mut() {
            h.insert(ShortStr::from("h"), long_str("v"));
        }
        core.input(&c, Wire::new().publish(1, "dx", "a.b", &props, b"later"));
        assert_eq!(core.queue_depth("q"), Some(0), "{kind}: not at once");
        core.advance_ms(399);
        assert_eq!(core.queue_depth("q"), Some(0), "{kind}: not early");
        core.advance_ms(1);
        let o = get(&mut core, &mut c, "q", true).expect("delivered when due");
        assert_eq!(o.body(), b"later", "{kind}");
        assert_eq!(x_delay(&o), Some(FieldValue::I32(-400)), "{kind}");
        if kind != "fanout" {
            // A non-matching key or header is routed nowhere when due.
            let mut w = Wire::new().publish(1, "dx", "zz", &delay(50), b"no");
            if kind == "headers" {
                w = Wire::new().publish(1, "dx", "a.b", &delay(50), b"no");
            }
            core.input(&c, w);
            core.advance_ms(100);
            assert_eq!(core.queue_depth("q"), Some(0), "{kind}");
        }
    }
}

#[test]
fn no_zero_negative_or_too_large_delay_routes_at_once_unchanged() {
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "fanout", false, &[]);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "dx", "", FieldTable::new());
    let w = Wire::new()
        .publish(1, "dx", "", &BasicProperties::default(), b"none")
        .publish(1, "dx", "", &delay(0), b"zero")
        .publish(1, "dx", "", &delay(-100), b"neg")
        .publish(1, "dx", "", &delay(4_294_967_296), b"huge");
    core.input(&c, w);
    let mut got = Vec::new();
    while let Some(o) = get(&mut core, &mut c, "q", true) {
        got.push((String::from_utf8_lossy(o.body()).into_owned(), x_delay(&o)));
    }
    assert_eq!(
        got,
        vec![
            ("none".to_string(), None),
            ("zero".to_string(), Some(FieldValue::I64(0))),
            ("neg".to_string(), Some(FieldValue::I64(-100))),
            ("huge".to_string(), Some(FieldValue::I64(4_294_967_296))),
        ]
    );
}

#[test]
fn delivered_in_due_order_not_publish_order() {
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "direct", false, &[]);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "dx", "k", FieldTable::new());
    let mut w = Wire::new();
    for (body, ms) in [("c300", 300), ("a100", 100), ("b200", 200), ("a2-100", 100)] {
        w = w.publish(1, "dx", "k", &delay(ms), body.as_bytes());
    }
    core.input(&c, w);
    core.advance_ms(150);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["a100", "a2-100"]);
    // Everything else is due: routed in due order within one tick.
    core.advance_ms(1_000);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["b200", "c300"]);
}

#[test]
fn a_consumer_gets_the_message_when_it_is_due() {
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "direct", false, &[]);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "dx", "k", FieldTable::new());
    assert!(core.consume(&mut c, 1, "q", "k", true).is_empty());
    core.input(&c, Wire::new().publish(1, "dx", "k", &delay(250), b"m"));
    assert!(c.recv().is_empty());
    core.advance_ms(200);
    assert!(c.recv().is_empty());
    core.advance_ms(50);
    let got = c.recv();
    assert!(
        matches!(got.as_slice(), [Out::Content { body, .. }] if &body[..] == b"m"),
        "{got:?}"
    );
}

#[test]
fn mandatory_is_returned_at_once_and_still_delivered() {
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "direct", false, &[]);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "dx", "k", FieldTable::new());
    core.input(
        &c,
        Wire::new().publish_mandatory(1, "dx", "k", &delay(200), b"m"),
    );
    let got = c.recv();
    let [Out::Content {
        method: Method::BasicReturn(r),
        body,
        ..
    }] = got.as_slice()
    else {
        panic!("{got:?}")
    };
    assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(&body[..], b"m");
    core.advance_ms(200);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["m"]);
}

#[test]
fn alternate_exchange_gets_a_copy_at_once() {
    let (mut core, mut c) = setup();
    declare_exchange(&mut core, &mut c, "ae", "fanout");
    core.declare_queue(&mut c, 1, "aeq", FieldTable::new());
    bind(&mut core, &mut c, "aeq", "ae", "", FieldTable::new());
    declare_delayed(
        &mut core,
        &mut c,
        "dx",
        "direct",
        false,
        &[("alternate-exchange", long_str("ae"))],
    );
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "dx", "k", FieldTable::new());
    core.input(&c, Wire::new().publish(1, "dx", "k", &delay(100), b"m"));
    assert_eq!(drain(&mut core, &mut c, "aeq"), vec!["m"]);
    core.advance_ms(100);
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["m"]);
    assert_eq!(core.queue_depth("aeq"), Some(0), "routed, not alternate");
}

#[test]
fn deleting_the_exchange_drops_pending_messages() {
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "fanout", false, &[]);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "dx", "", FieldTable::new());
    core.input(&c, Wire::new().publish(1, "dx", "", &delay(100), b"m"));
    let got = core.call(
        &mut c,
        1,
        Method::ExchangeDelete(amqp_codec::ExchangeDelete {
            exchange: ShortStr::from("dx"),
            ..Default::default()
        }),
    );
    assert!(
        matches!(
            got.as_slice(),
            [Out::Method(1, Method::ExchangeDeleteOk(_))]
        ),
        "{got:?}"
    );
    // Redeclared and rebound: the old message is gone for good.
    declare_delayed(&mut core, &mut c, "dx", "fanout", false, &[]);
    bind(&mut core, &mut c, "q", "dx", "", FieldTable::new());
    core.advance_ms(1_000);
    assert_eq!(core.queue_depth("q"), Some(0));
}

#[test]
fn durable_persistent_delayed_message_is_stored_and_confirmed_after_sync() {
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "direct", true, &[]);
    let got = core.call(
        &mut c,
        1,
        Method::QueueDeclare(amqp_codec::QueueDeclare {
            queue: ShortStr::from("q"),
            durable: true,
            ..Default::default()
        }),
    );
    assert_eq!(got.len(), 1);
    bind(&mut core, &mut c, "q", "dx", "k", FieldTable::new());
    assert_eq!(
        core.call(&mut c, 1, Method::ConfirmSelect(Default::default()))
            .len(),
        1
    );
    let mut props = delay(300);
    props.delivery_mode = Some(2);
    core.input(&c, Wire::new().publish(1, "dx", "k", &props, b"p"));
    assert!(c.recv().is_empty(), "no confirm before the sync");
    let hidden = "amq.x-delayed-message.dx";
    assert_eq!(
        core.store
            .lock()
            .live
            .iter()
            .filter(|(q, _)| q == hidden)
            .count(),
        1,
        "kept by the store for the exchange"
    );
    core.sync();
    let got = c.recv();
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::BasicAck(a))] if a.delivery_tag == 1),
        "{got:?}"
    );
    core.advance_ms(300);
    let live = core.store.lock().live.clone();
    assert!(!live.iter().any(|(q, _)| q == hidden), "{live:?}");
    assert_eq!(live.iter().filter(|(q, _)| q == "q").count(), 1, "{live:?}");
    let o = get(&mut core, &mut c, "q", true).expect("routed");
    assert_eq!(o.body(), b"p");
    assert_eq!(core.store.lock().live, vec![]);
}

#[test]
fn missing_delayed_type_is_refused_with_the_plugin_text() {
    let (mut core, mut c) = setup();
    let got = core.call(
        &mut c,
        1,
        Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
            exchange: ShortStr::from("dx"),
            kind: ShortStr::from("x-delayed-message"),
            ..Default::default()
        }),
    );
    assert_eq!(
        channel_close(&got),
        Some((
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type".to_string()
        ))
    );
}
