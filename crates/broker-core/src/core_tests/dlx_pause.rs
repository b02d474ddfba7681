//! Dead-lettering while the store refuses new messages (paused on a full
//! disk): the dead-lettered copy of a persistent message would be refused,
//! so the message stays in its source queue — never lost — and is
//! dead-lettered once the store takes messages again (RabbitMQ's
//! at-least-once dead-lettering keeps it in the source queue likewise).

use amqp_codec::{FieldValue, Method};

use super::*;
use crate::testkit::{bodies, persistent, Out, Wire};

/// Durable `dlq`, and durable `src` dead-lettering to it with `extra` args.
fn durable_pair(core: &mut Core, c: &mut Client, extra: &[(&str, FieldValue)]) {
    for (name, mut args) in [
        ("dlq", Vec::new()),
        (
            "src",
            vec![
                ("x-dead-letter-exchange", long_str("")),
                ("x-dead-letter-routing-key", long_str("dlq")),
            ],
        ),
    ] {
        if name == "src" {
            args.extend(extra.iter().cloned());
        }
        let got = core.call(
            c,
            1,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: name.into(),
                durable: true,
                arguments: table(&args),
                ..Default::default()
            }),
        );
        assert!(
            matches!(got.as_slice(), [Out::Method(1, Method::QueueDeclareOk(_))]),
            "{got:?}"
        );
    }
}

fn held(core: &Core, queue: &str) -> usize {
    core.store
        .lock()
        .live
        .iter()
        .filter(|(q, _)| q == queue)
        .count()
}

#[test]
fn a_reject_while_the_store_is_paused_keeps_the_message_in_its_queue() {
    let (mut core, mut c) = setup();
    durable_pair(&mut core, &mut c, &[]);
    core.input(&c, Wire::new().publish(1, "", "src", &persistent(), b"m1"));
    assert_eq!(bodies(&core.consume(&mut c, 1, "src", "k", false)), ["m1"]);
    core.store.lock().paused = true;
    let reject = Method::BasicReject(amqp_codec::BasicReject {
        delivery_tag: 1,
        requeue: false,
    });
    let got = core.call(&mut c, 1, reject);
    // Back in src (redelivered to its consumer), not in dlq, still stored.
    assert_eq!(bodies(&got), ["m1"], "{got:?}");
    assert_eq!(core.queue_depth("dlq"), Some(0));
    assert_eq!(held(&core, "src"), 1, "the original's record was released");
    // Space is back: the next reject dead-letters it, the copy first.
    core.store.lock().paused = false;
    let again = Method::BasicReject(amqp_codec::BasicReject {
        delivery_tag: 2,
        requeue: false,
    });
    assert!(core.call(&mut c, 1, again).is_empty());
    assert_eq!(core.queue_depth("dlq"), Some(1));
    assert_eq!((held(&core, "src"), held(&core, "dlq")), (0, 1));
    assert_eq!(
        core.store.lock().copies,
        1,
        "the copy went through append_copy"
    );
}

#[test]
fn expiry_while_the_store_is_paused_waits_at_the_head_then_dead_letters() {
    let (mut core, mut c) = setup();
    durable_pair(
        &mut core,
        &mut c,
        &[("x-message-ttl", FieldValue::I32(100))],
    );
    core.input(
        &c,
        Wire::new()
            .publish(1, "", "src", &persistent(), b"old")
            .publish(1, "", "src", &persistent(), b"new"),
    );
    core.store.lock().paused = true;
    core.advance_ms(500);
    core.tick();
    assert_eq!(
        core.queue_depth("src"),
        Some(2),
        "expired while the copy would be refused"
    );
    assert_eq!(core.queue_depth("dlq"), Some(0));
    // Nothing expired is handed out meanwhile, and nothing overtakes it.
    let got = core.call(
        &mut c,
        1,
        Method::BasicGet(amqp_codec::BasicGet {
            queue: "src".into(),
            no_ack: true,
            ..Default::default()
        }),
    );
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::BasicGetEmpty(_))]),
        "{got:?}"
    );
    assert!(core.consume(&mut c, 1, "src", "k", false).is_empty());
    core.store.lock().paused = false;
    core.tick();
    assert_eq!(core.queue_depth("src"), Some(0));
    assert_eq!(core.queue_depth("dlq"), Some(2));
    assert_eq!((held(&core, "src"), held(&core, "dlq")), (0, 2));
}

#[test]
fn overflow_while_the_store_is_paused_keeps_the_head() {
    let (mut core, mut c) = setup();
    durable_pair(&mut core, &mut c, &[("x-max-length", FieldValue::I32(1))]);
    core.input(
        &c,
        Wire::new().publish(1, "", "src", &persistent(), b"first"),
    );
    core.store.lock().paused = true;
    // A transient publish is still taken; the persistent head it pushes
    // out cannot be dead-lettered, so it stays (over the limit for now).
    core.input(
        &c,
        Wire::new().publish(1, "", "src", &Default::default(), b"second"),
    );
    assert_eq!(core.queue_depth("src"), Some(2));
    assert_eq!(core.queue_depth("dlq"), Some(0));
    core.store.lock().paused = false;
    core.input(
        &c,
        Wire::new().publish(1, "", "src", &Default::default(), b"third"),
    );
    assert_eq!(core.queue_depth("src"), Some(1));
    assert_eq!(core.queue_depth("dlq"), Some(2));
    assert_eq!(drain(&mut core, &mut c, "dlq"), ["first", "second"]);
}

#[test]
fn a_due_delayed_message_waits_in_its_exchange_while_the_store_is_paused() {
    use super::delayed::{declare_delayed, delay};
    let (mut core, mut c) = setup();
    declare_delayed(&mut core, &mut c, "dx", "direct", true, &[]);
    let got = core.call(
        &mut c,
        1,
        Method::QueueDeclare(amqp_codec::QueueDeclare {
            queue: "q".into(),
            durable: true,
            ..Default::default()
        }),
    );
    assert_eq!(got.len(), 1);
    bind(
        &mut core,
        &mut c,
        "q",
        "dx",
        "k",
        amqp_codec::FieldTable::new(),
    );
    let mut props = delay(300);
    props.delivery_mode = Some(2);
    core.input(&c, Wire::new().publish(1, "dx", "k", &props, b"p"));
    core.store.lock().paused = true;
    core.advance_ms(400);
    assert_eq!(core.queue_depth("q"), Some(0));
    assert_eq!(
        held(&core, "amq.x-delayed-message.dx"),
        1,
        "released while refused"
    );
    core.store.lock().paused = false;
    core.advance_ms(200);
    assert_eq!(core.queue_depth("q"), Some(1));
    assert_eq!(held(&core, "amq.x-delayed-message.dx"), 0);
    assert_eq!(held(&core, "q"), 1);
    assert_eq!(core.store.lock().copies, 1);
}
