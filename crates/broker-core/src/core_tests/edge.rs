//! Protocol edge cases, each as RabbitMQ 3.10 behaves: frames on a channel
//! the broker is closing are discarded up to the client's close-ok (content
//! header and body frames too, on the fast and the general path); a client
//! channel.close crossing the broker's; unbinding what is not there;
//! declaring the default exchange; nothing after connection.close-ok.

use amqp_codec::{BasicProperties, FieldTable, Method, ShortStr};

use super::*;
use crate::testkit::{bodies, Core, Out, Wire};

fn close_ok() -> Method {
    Method::ChannelCloseOk(Default::default())
}

fn connection_closed(outs: &[Out]) -> bool {
    outs.iter()
        .any(|o| matches!(o, Out::Method(0, Method::ConnectionClose(_))))
}

/// Channel `ch` works: a publish to `q` then a get returns it.
fn assert_usable(core: &mut Core, c: &mut Client, ch: u16, q: &str) {
    core.input(
        c,
        Wire::new().publish(ch, "", q, &BasicProperties::default(), b"ok"),
    );
    let got = core.call(
        c,
        ch,
        Method::BasicGet(amqp_codec::BasicGet {
            queue: ShortStr::from(q),
            no_ack: true,
            ..Default::default()
        }),
    );
    assert_eq!(bodies(&got), vec!["ok"], "channel {ch}: {got:?}");
}

#[test]
fn frames_on_a_closing_channel_are_discarded_until_close_ok() {
    for fast_path in [true, false] {
        let mut core = Core {
            fast_path,
            ..Core::default()
        };
        let mut c = core.connect();
        core.open_channel(&mut c, 1);
        core.declare_queue(&mut c, 1, "q", FieldTable::new());
        let p = BasicProperties::default();
        // A publish to a missing exchange, then more publishes pipelined
        // on the same channel in the same read, and a method.
        let mut w = Wire::new().publish(1, "missing", "k", &p, b"x");
        for _ in 0..3 {
            w = w.publish(1, "", "q", &p, b"dropped");
        }
        w = w.method(
            1,
            Method::QueueDelete(amqp_codec::QueueDelete {
                queue: ShortStr::from("q"),
                ..Default::default()
            }),
        );
        core.input(&c, w);
        let got = c.recv();
        assert_eq!(
            channel_close(&got),
            Some((
                404,
                "NOT_FOUND - no exchange 'missing' in vhost '/'".to_string()
            )),
            "fast_path={fast_path}"
        );
        assert_eq!(got.len(), 1, "{got:?}");
        // Later reads: a publish split between its frames, then a
        // multi-frame body (header and body frames on their own).
        let split = Wire::new().publish(1, "", "q", &p, b"split").frames();
        assert_eq!(split.len(), 3);
        for f in split {
            core.input(&c, f);
        }
        let big = vec![b'b'; 300_000];
        core.input(&c, Wire::new().publish(1, "", "q", &p, &big));
        assert!(c.recv().is_empty(), "discarded silently");
        assert_eq!(core.queue_depth("q"), Some(0), "nothing published");
        // The close-ok ends it: the channel can be opened again.
        assert!(core.call(&mut c, 1, close_ok()).is_empty());
        core.open_channel(&mut c, 1);
        assert_usable(&mut core, &mut c, 1, "q");
    }
}

#[test]
fn an_error_between_header_and_body_discards_the_rest_of_the_content() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    let p = BasicProperties::default();
    let big = vec![b'y'; 300_000];
    let frames = Wire::new().publish(1, "missing", "k", &p, &big).frames();
    assert!(frames.len() >= 4, "method, header, several body frames");
    // The method and header in one read, the body frames one per read.
    let mut iter = frames.into_iter();
    let head = Wire([iter.next(), iter.next()].into_iter().flatten().fold(
        bytes::BytesMut::new(),
        |mut b, w| {
            b.extend_from_slice(&w.0);
            b
        },
    ));
    core.input(&c, head);
    let mut got = c.recv();
    for f in iter {
        core.input(&c, f);
        got.extend(c.recv());
    }
    assert_eq!(
        got.iter()
            .filter(|o| channel_close(std::slice::from_ref(*o)).is_some())
            .count(),
        1,
        "{got:?}"
    );
    assert!(!connection_closed(&got), "{got:?}");
    assert!(core.call(&mut c, 1, close_ok()).is_empty());
    core.open_channel(&mut c, 1);
    assert_usable(&mut core, &mut c, 1, "q");
}

#[test]
fn a_client_channel_close_crossing_the_brokers_is_answered() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 2, "other", FieldTable::new());
    let w = Wire::new()
        .method(
            1,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: ShortStr::from("nope"),
                passive: true,
                ..Default::default()
            }),
        )
        .method(
            1,
            Method::ChannelClose(amqp_codec::ChannelClose {
                reply_code: 200,
                ..Default::default()
            }),
        );
    core.input(&c, w);
    let got = c.recv();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        channel_close(&got[..1]),
        Some((404, "NOT_FOUND - no queue 'nope' in vhost '/'".to_string()))
    );
    assert_eq!(got[1], Out::Method(1, close_ok()));
    // The client's close-ok for the broker's close is accepted silently.
    assert!(core.call(&mut c, 1, close_ok()).is_empty());
    assert_usable(&mut core, &mut c, 2, "other");
    core.open_channel(&mut c, 1);
    assert_usable(&mut core, &mut c, 1, "other");
}

fn queue_unbind(q: &str, x: &str) -> Method {
    Method::QueueUnbind(amqp_codec::QueueUnbind {
        queue: ShortStr::from(q),
        exchange: ShortStr::from(x),
        routing_key: ShortStr::from("k"),
        ..Default::default()
    })
}

fn exchange_unbind(dst: &str, src: &str) -> Method {
    Method::ExchangeUnbind(amqp_codec::ExchangeUnbind {
        destination: ShortStr::from(dst),
        source: ShortStr::from(src),
        routing_key: ShortStr::from("k"),
        ..Default::default()
    })
}

#[test]
fn unbinding_what_is_not_there_succeeds() {
    for missing in ["binding", "queue", "exchange", "both"] {
        let (mut core, mut c) = setup();
        if missing == "binding" || missing == "exchange" {
            core.declare_queue(&mut c, 1, "q", FieldTable::new());
        }
        if missing == "binding" || missing == "queue" {
            declare_exchange(&mut core, &mut c, "x", "direct");
        }
        let got = core.call(&mut c, 1, queue_unbind("q", "x"));
        assert_eq!(
            got,
            vec![Out::Method(1, Method::QueueUnbindOk(Default::default()))],
            "queue.unbind, missing {missing}"
        );
    }
    for missing in ["binding", "source", "destination", "both"] {
        let (mut core, mut c) = setup();
        if missing == "binding" || missing == "destination" {
            declare_exchange(&mut core, &mut c, "src", "direct");
        }
        if missing == "binding" || missing == "source" {
            declare_exchange(&mut core, &mut c, "dst", "fanout");
        }
        let got = core.call(&mut c, 1, exchange_unbind("dst", "src"));
        assert_eq!(
            got,
            vec![Out::Method(1, Method::ExchangeUnbindOk(Default::default()))],
            "exchange.unbind, missing {missing}"
        );
    }
}

#[test]
fn unbind_twice_succeeds_and_really_unbinds() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    bind(&mut core, &mut c, "q", "amq.direct", "k", FieldTable::new());
    for _ in 0..2 {
        let got = core.call(&mut c, 1, queue_unbind("q", "amq.direct"));
        assert_eq!(
            got,
            vec![Out::Method(1, Method::QueueUnbindOk(Default::default()))]
        );
    }
    core.input(
        &c,
        Wire::new().publish(1, "amq.direct", "k", &BasicProperties::default(), b"m"),
    );
    assert_eq!(core.queue_depth("q"), Some(0));
}

#[test]
fn the_default_exchange_cannot_be_declared_or_unbound() {
    const TEXT: &str = "ACCESS_REFUSED - operation not permitted on the default exchange";
    for passive in [true, false] {
        let (mut core, mut c) = setup();
        let got = core.call(
            &mut c,
            1,
            Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
                exchange: ShortStr::from(""),
                kind: ShortStr::from("direct"),
                passive,
                ..Default::default()
            }),
        );
        assert_eq!(
            channel_close(&got),
            Some((403, TEXT.to_string())),
            "passive={passive}"
        );
        assert!(!connection_closed(&got));
    }
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    let got = core.call(&mut c, 1, queue_unbind("q", ""));
    assert_eq!(channel_close(&got), Some((403, TEXT.to_string())));
}

#[test]
fn nothing_follows_connection_close_ok() {
    for confirms in [false, true] {
        let mut core = Core::default();
        let mut c = core.connect();
        let mut other = core.connect();
        core.open_channel(&mut other, 1);
        for ch in [1, 2, 3] {
            core.open_channel(&mut c, ch);
        }
        core.declare_queue(&mut c, 1, "q", FieldTable::new());
        for ch in [1, 3] {
            let qos = Method::BasicQos(amqp_codec::BasicQos {
                prefetch_count: 10,
                ..Default::default()
            });
            assert_eq!(core.call(&mut c, ch, qos).len(), 1);
            assert!(core
                .consume(&mut c, ch, "q", &format!("k{ch}"), false)
                .is_empty());
        }
        if confirms {
            let got = core.call(&mut c, 2, Method::ConfirmSelect(Default::default()));
            assert_eq!(got.len(), 1);
        }
        let mut w = Wire::new();
        for i in 0..20 {
            let body = format!("m{i}");
            w = w.publish(2, "", "q", &BasicProperties::default(), body.as_bytes());
        }
        w = w.method(
            0,
            Method::ConnectionClose(amqp_codec::ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from("bye"),
                ..Default::default()
            }),
        );
        core.input(&c, w);
        let got = c.recv();
        assert_eq!(
            got.last(),
            Some(&Out::Method(
                0,
                Method::ConnectionCloseOk(Default::default())
            )),
            "confirms={confirms}: {got:?}"
        );
        let close_oks = got
            .iter()
            .filter(|o| matches!(o, Out::Method(0, Method::ConnectionCloseOk(_))))
            .count();
        assert_eq!(close_oks, 1);
        // What the publishes produced came before the close-ok.
        assert_eq!(bodies(&got).len(), 20, "delivered before close-ok");
        if confirms {
            assert!(got
                .iter()
                .any(|o| matches!(o, Out::Method(2, Method::BasicAck(a)) if a.delivery_tag == 20)));
        }
        // The unacked deliveries went back to the queue, for others.
        assert_eq!(core.queue_depth("q"), Some(20));
        assert!(core.consume(&mut other, 1, "q", "o", true).len() == 20);
        assert!(c.recv().is_empty(), "nothing after close-ok");
    }
}

/// RabbitMQ 3.10's publisher throttle: raising the alarm tells no one (a
/// connection opened under it is not told either); the first basic.publish
/// under it stays unread and blocks its connection (connection.blocked
/// once, not again when the reason changes), which is then read no more;
/// other connections carry on; clearing the alarm sends
/// connection.unblocked and the held publish is taken.
#[test]
fn the_alarm_blocks_a_connection_at_its_first_publish() {
    for fast_path in [true, false] {
        let mut core = Core {
            fast_path,
            ..Core::default()
        };
        let mut p = core.connect();
        core.open_channel(&mut p, 1);
        core.declare_queue(&mut p, 1, "q", FieldTable::default());
        core.broker.set_alarm(Some("low on disk".into()));
        core.broker.flush();
        let mut late = core.connect();
        core.open_channel(&mut late, 1);
        assert!(p.recv().is_empty() && late.recv().is_empty());
        // Not a publish: served as usual.
        core.declare_queue(&mut p, 1, "q2", FieldTable::default());
        let props = BasicProperties::default();
        core.input(
            &p,
            Wire::new()
                .publish(1, "", "q", &props, b"held")
                .publish(1, "", "q", &props, b"next"),
        );
        let blocked = |o: &Out| matches!(o, Out::Method(0, Method::ConnectionBlocked(_)));
        let got = p.recv();
        assert!(
            matches!(got.as_slice(), [Out::Method(0, Method::ConnectionBlocked(b))] if b.reason.as_str() == "low on disk"),
            "fast_path={fast_path}: {got:?}"
        );
        assert_eq!(core.queue_depth("q"), Some(0), "the publish stays unread");
        core.broker.set_alarm(Some("low on disk; memory".into()));
        core.broker.flush();
        let declare_q3 = Method::QueueDeclare(amqp_codec::QueueDeclare {
            queue: ShortStr::from("q3"),
            ..Default::default()
        });
        core.input(&p, Wire::new().method(1, declare_q3));
        assert!(
            p.recv().is_empty(),
            "not read while blocked, not told twice"
        );
        core.declare_queue(&mut late, 1, "q4", FieldTable::default());
        assert!(!late.recv().iter().any(blocked));
        core.broker.set_alarm(None);
        core.broker.flush();
        assert_eq!(
            p.recv(),
            vec![Out::Method(
                0,
                Method::ConnectionUnblocked(Default::default())
            )]
        );
        assert!(late.recv().is_empty(), "never blocked, never unblocked");
        core.resume(&p);
        assert_eq!(core.queue_depth("q"), Some(2), "fast_path={fast_path}");
        assert!(p.recv().iter().any(
            |o| matches!(o, Out::Method(1, Method::QueueDeclareOk(d)) if d.queue.as_str() == "q3")
        ));
    }
}
