//! A persistent message held only by queues the store holds it for is
//! kept once, in the store: the arena has a 40-byte stub and deliveries,
//! gets, dead-lettering and priority requeues read the store's record.
//! Anything else (transient, or also routed to a non-durable queue) keeps
//! a full arena copy.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::arena::STUB_RECORD_BYTES;
use crate::testkit::{persistent, Wire};

fn declare_durable(core: &mut Core, c: &mut Client, name: &str, args: FieldTable) {
    let got = core.call(
        c,
        1,
        Method::QueueDeclare(amqp_codec::QueueDeclare {
            queue: ShortStr::from(name),
            durable: true,
            arguments: args,
            ..Default::default()
        }),
    );
    assert!(
        matches!(got.as_slice(), [Out::Method(_, Method::QueueDeclareOk(_))]),
        "declare {name}: {got:?}"
    );
}

fn arena_bytes(core: &Core) -> u64 {
    core.broker.arena.usage().1
}

fn publish(core: &mut Core, c: &Client, ex: &str, rk: &str, props: &BasicProperties, body: &[u8]) {
    core.input(c, Wire::new().publish(1, ex, rk, props, body));
}

#[test]
fn persistent_message_of_durable_queues_is_one_store_copy() {
    let (mut core, mut c) = setup();
    declare_durable(&mut core, &mut c, "d", FieldTable::new());
    core.declare_queue(&mut c, 1, "t", FieldTable::new());
    declare_exchange(&mut core, &mut c, "fx", "fanout");
    bind(&mut core, &mut c, "d", "fx", "", FieldTable::new());
    bind(&mut core, &mut c, "t", "fx", "", FieldTable::new());
    let big = vec![b'p'; 4096];

    // Persistent, durable queue only: a stub in the arena.
    let before = arena_bytes(&core);
    publish(&mut core, &c, "", "d", &persistent(), &big);
    assert_eq!(arena_bytes(&core) - before, STUB_RECORD_BYTES as u64);
    // Transient to the same queue: a full copy.
    let before = arena_bytes(&core);
    publish(&mut core, &c, "", "d", &BasicProperties::default(), &big);
    assert!(arena_bytes(&core) - before >= big.len() as u64);
    // Persistent to a durable and a non-durable queue: a full copy too
    // (the non-durable queue could outlive the store's hold).
    let before = arena_bytes(&core);
    publish(&mut core, &c, "fx", "", &persistent(), &big);
    assert!(arena_bytes(&core) - before >= big.len() as u64);

    // Deliveries read the store's record: same bytes, properties intact.
    let reads = core.store.lock().reads;
    let first = get(&mut core, &mut c, "d", false).expect("stub message");
    assert_eq!(first.body(), &big[..]);
    match &first {
        Out::Content { properties, .. } => assert_eq!(properties.delivery_mode, Some(2)),
        o => panic!("{o:?}"),
    }
    assert_eq!(core.store.lock().reads, reads + 1, "read from the store");
    assert_eq!(drain(&mut core, &mut c, "d").len(), 2);
    assert_eq!(core.store.lock().reads, reads + 1, "full copies: no reads");
    assert_eq!(drain(&mut core, &mut c, "t").len(), 1);

    // A requeued stub message is read again after its requeue.
    let tag = delivery_tag(&first);
    core.call(
        &mut c,
        1,
        Method::BasicNack(amqp_codec::BasicNack {
            delivery_tag: tag,
            multiple: false,
            requeue: true,
        }),
    );
    let again = get(&mut core, &mut c, "d", true).expect("requeued");
    assert!(redelivered(&again));
    assert_eq!(again.body(), &big[..]);
    assert!(core.store.lock().live.is_empty(), "everything settled");
}

#[test]
fn consumers_and_dead_letters_read_stub_messages_from_the_store() {
    let (mut core, mut c) = setup();
    declare_durable(&mut core, &mut c, "dlq", FieldTable::new());
    declare_durable(
        &mut core,
        &mut c,
        "src",
        table(&[
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str("dlq")),
        ]),
    );
    for b in ["one", "two"] {
        publish(&mut core, &c, "", "src", &persistent(), b.as_bytes());
    }
    let got = core.consume(&mut c, 1, "src", "k", false);
    assert_eq!(crate::testkit::bodies(&got), vec!["one", "two"]);
    assert!(core.store.lock().reads >= 2);
    // Reject both: their contents go to the dead-letter queue (copied out
    // of the store before the source releases its record).
    for o in &got {
        core.call(
            &mut c,
            1,
            Method::BasicReject(amqp_codec::BasicReject {
                delivery_tag: delivery_tag(o),
                requeue: false,
            }),
        );
    }
    assert_eq!(drain(&mut core, &mut c, "dlq"), vec!["one", "two"]);
    assert!(core.store.lock().live.is_empty());
}

#[test]
fn priority_lanes_of_stub_messages_survive_requeue() {
    let (mut core, mut c) = setup();
    declare_durable(
        &mut core,
        &mut c,
        "pq",
        table(&[("x-max-priority", FieldValue::I32(9))]),
    );
    for (b, p) in [("low", 1u8), ("high", 7), ("mid", 4)] {
        let props = BasicProperties {
            priority: Some(p),
            ..persistent()
        };
        publish(&mut core, &c, "", "pq", &props, b.as_bytes());
    }
    let held: Vec<Out> = (0..3)
        .map(|_| get(&mut core, &mut c, "pq", false).expect("message"))
        .collect();
    assert_eq!(crate::testkit::bodies(&held), vec!["high", "mid", "low"]);
    // Requeue in reverse: each goes back to its own priority lane.
    for o in held.iter().rev() {
        core.call(
            &mut c,
            1,
            Method::BasicNack(amqp_codec::BasicNack {
                delivery_tag: delivery_tag(o),
                multiple: false,
                requeue: true,
            }),
        );
    }
    assert_eq!(drain(&mut core, &mut c, "pq"), vec!["high", "mid", "low"]);
}
