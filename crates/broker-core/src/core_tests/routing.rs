//! Routing through each exchange type, exchange-to-exchange bindings,
//! alternate exchanges and mandatory returns.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{Out, Wire};

fn props() -> BasicProperties {
    BasicProperties::default()
}

#[test]
fn default_exchange_routes_by_queue_name() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q1", FieldTable::new());
    core.input(
        &c,
        Wire::new()
            .publish(1, "", "q1", &props(), b"a")
            .publish(1, "", "nope", &props(), b"b"),
    );
    assert!(c.recv().is_empty());
    assert_eq!(drain(&mut core, &mut c, "q1"), vec!["a"]);
}

#[test]
fn direct_fanout_topic_and_headers() {
    let (mut core, mut c) = setup();
    for q in ["d", "f1", "f2", "t1", "t2", "h"] {
        core.declare_queue(&mut c, 1, q, FieldTable::new());
    }
    declare_exchange(&mut core, &mut c, "x.d", "direct");
    declare_exchange(&mut core, &mut c, "x.f", "fanout");
    declare_exchange(&mut core, &mut c, "x.t", "topic");
    declare_exchange(&mut core, &mut c, "x.h", "headers");
    bind(&mut core, &mut c, "d", "x.d", "k", FieldTable::new());
    bind(&mut core, &mut c, "f1", "x.f", "", FieldTable::new());
    bind(&mut core, &mut c, "f2", "x.f", "ignored", FieldTable::new());
    bind(&mut core, &mut c, "t1", "x.t", "a.*.c", FieldTable::new());
    bind(&mut core, &mut c, "t2", "x.t", "a.#", FieldTable::new());
    let hargs = table(&[("x-match", long_str("all")), ("k", long_str("v"))]);
    bind(&mut core, &mut c, "h", "x.h", "", hargs);
    let with_header = BasicProperties {
        headers: Some(table(&[("k", long_str("v"))])),
        ..Default::default()
    };
    core.input(
        &c,
        Wire::new()
            .publish(1, "x.d", "k", &props(), b"d1")
            .publish(1, "x.d", "other", &props(), b"d2")
            .publish(1, "x.f", "whatever", &props(), b"f")
            .publish(1, "x.t", "a.b.c", &props(), b"t-abc")
            .publish(1, "x.t", "a", &props(), b"t-a")
            .publish(1, "x.t", "b.b.c", &props(), b"t-none")
            .publish(1, "x.h", "", &with_header, b"h-yes")
            .publish(1, "x.h", "", &props(), b"h-no"),
    );
    assert_eq!(drain(&mut core, &mut c, "d"), vec!["d1"]);
    assert_eq!(drain(&mut core, &mut c, "f1"), vec!["f"]);
    assert_eq!(drain(&mut core, &mut c, "f2"), vec!["f"]);
    assert_eq!(drain(&mut core, &mut c, "t1"), vec!["t-abc"]);
    assert_eq!(drain(&mut core, &mut c, "t2"), vec!["t-abc", "t-a"]);
    assert_eq!(drain(&mut core, &mut c, "h"), vec!["h-yes"]);
}

#[test]
fn exchange_to_exchange_reaches_each_queue_once() {
    let (mut core, mut c) = setup();
    declare_exchange(&mut core, &mut c, "src", "fanout");
    declare_exchange(&mut core, &mut c, "mid", "fanout");
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    let got = core.call(
        &mut c,
        1,
        Method::ExchangeBind(amqp_codec::ExchangeBind {
            destination: ShortStr::from("mid"),
            source: ShortStr::from("src"),
            ..Default::default()
        }),
    );
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::ExchangeBindOk(_))]
    ));
    // Two paths to the same queue: src -> q and src -> mid -> q.
    bind(&mut core, &mut c, "q", "mid", "", FieldTable::new());
    bind(&mut core, &mut c, "q", "src", "", FieldTable::new());
    core.input(&c, Wire::new().publish(1, "src", "", &props(), b"once"));
    assert_eq!(drain(&mut core, &mut c, "q"), vec!["once"]);
}

#[test]
fn alternate_exchange_takes_unroutable() {
    let (mut core, mut c) = setup();
    declare_exchange(&mut core, &mut c, "ae", "fanout");
    let got = core.call(
        &mut c,
        1,
        Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
            exchange: ShortStr::from("main"),
            kind: ShortStr::from("direct"),
            arguments: table(&[("alternate-exchange", long_str("ae"))]),
            ..Default::default()
        }),
    );
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::ExchangeDeclareOk(_))]
    ));
    core.declare_queue(&mut c, 1, "lost", FieldTable::new());
    bind(&mut core, &mut c, "lost", "ae", "", FieldTable::new());
    core.input(
        &c,
        Wire::new().publish_mandatory(1, "main", "nobody", &props(), b"x"),
    );
    // Routed through the alternate exchange: no basic.return.
    assert!(c.recv().is_empty());
    assert_eq!(drain(&mut core, &mut c, "lost"), vec!["x"]);
}

#[test]
fn mandatory_unroutable_is_returned_with_312() {
    let (mut core, mut c) = setup();
    core.input(
        &c,
        Wire::new().publish_mandatory(1, "", "absent", &props(), b"back"),
    );
    let got = c.recv();
    match got.as_slice() {
        [Out::Content {
            method: Method::BasicReturn(r),
            body,
            ..
        }] => {
            assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
            assert_eq!(&body[..], b"back");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn publish_to_missing_exchange_closes_channel_404() {
    let (mut core, mut c) = setup();
    core.input(&c, Wire::new().publish(1, "missing", "k", &props(), b"x"));
    let (code, text) = channel_close(&c.recv()).expect("channel.close");
    assert_eq!(code, 404);
    assert_eq!(text, "NOT_FOUND - no exchange 'missing' in vhost '/'");
}

#[test]
fn headers_any_and_integer_widths() {
    let (mut core, mut c) = setup();
    declare_exchange(&mut core, &mut c, "hx", "headers");
    core.declare_queue(&mut c, 1, "hq", FieldTable::new());
    let args = table(&[
        ("x-match", long_str("any")),
        ("n", FieldValue::I32(5)),
        ("s", long_str("v")),
    ]);
    bind(&mut core, &mut c, "hq", "hx", "", args);
    let p = |t: FieldTable| BasicProperties {
        headers: Some(t),
        ..Default::default()
    };
    core.input(
        &c,
        Wire::new()
            .publish(
                1,
                "hx",
                "",
                &p(table(&[("n", FieldValue::I64(5))])),
                b"wide-int",
            )
            .publish(1, "hx", "", &p(table(&[("s", long_str("w"))])), b"wrong")
            .publish(1, "hx", "", &p(table(&[("s", long_str("v"))])), b"str"),
    );
    assert_eq!(drain(&mut core, &mut c, "hq"), vec!["wide-int", "str"]);
}
