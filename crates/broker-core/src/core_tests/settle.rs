//! Acks, nacks, rejects, requeue positions, recover, channel close, tx and
//! publisher confirms (released only when the store reports them durable).

use amqp_codec::{BasicProperties, FieldTable, Method};

use super::*;
use crate::testkit::{bodies, persistent, Out, Wire};

fn publish_bodies(core: &mut Core, c: &Client, q: &str, props: &BasicProperties, names: &[&str]) {
    let mut w = Wire::new();
    for b in names {
        w = w.publish(1, "", q, props, b.as_bytes());
    }
    core.input(c, w);
}

fn nack(tag: u64, multiple: bool, requeue: bool) -> Method {
    Method::BasicNack(amqp_codec::BasicNack {
        delivery_tag: tag,
        multiple,
        requeue,
    })
}

#[test]
fn requeued_messages_return_to_their_place_redelivered() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_bodies(
        &mut core,
        &c,
        "q",
        &BasicProperties::default(),
        &["a", "b", "c"],
    );
    let a = get(&mut core, &mut c, "q", false).unwrap();
    let b = get(&mut core, &mut c, "q", false).unwrap();
    // Requeue b then a: the queue is back to a, b, c.
    assert!(core
        .call(&mut c, 1, nack(delivery_tag(&b), false, true))
        .is_empty());
    assert!(core
        .call(&mut c, 1, nack(delivery_tag(&a), false, true))
        .is_empty());
    let again: Vec<Out> = (0..3)
        .map(|_| get(&mut core, &mut c, "q", true).unwrap())
        .collect();
    assert_eq!(bodies(&again), vec!["a", "b", "c"]);
    let flags: Vec<bool> = again.iter().map(redelivered).collect();
    assert_eq!(flags, vec![true, true, false]);
}

#[test]
fn nack_without_requeue_drops_and_double_ack_is_406() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_bodies(&mut core, &c, "q", &BasicProperties::default(), &["a"]);
    let a = get(&mut core, &mut c, "q", false).unwrap();
    assert!(core
        .call(&mut c, 1, nack(delivery_tag(&a), false, false))
        .is_empty());
    assert!(get(&mut core, &mut c, "q", true).is_none());
    let got = core.call(&mut c, 1, nack(delivery_tag(&a), false, false));
    let (code, text) = channel_close(&got).expect("406");
    assert_eq!(code, 406);
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 1");
}

#[test]
fn channel_close_requeues_unacked() {
    let (mut core, mut c) = setup();
    core.open_channel(&mut c, 2);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_bodies(&mut core, &c, "q", &BasicProperties::default(), &["a", "b"]);
    let got = core.consume(&mut c, 2, "q", "k", false);
    assert_eq!(bodies(&got), vec!["a", "b"]);
    let got = core.call(&mut c, 2, Method::ChannelClose(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(2, Method::ChannelCloseOk(_))]
    ));
    let again = drain(&mut core, &mut c, "q");
    assert_eq!(again, vec!["a", "b"]);
}

#[test]
fn vanished_connection_requeues_unacked() {
    let (mut core, mut c) = setup();
    let mut other = core.connect();
    core.open_channel(&mut other, 1);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_bodies(&mut core, &c, "q", &BasicProperties::default(), &["a"]);
    assert_eq!(
        bodies(&core.consume(&mut other, 1, "q", "k", false)),
        vec!["a"]
    );
    core.disconnect(other);
    let o = get(&mut core, &mut c, "q", true).unwrap();
    assert!(redelivered(&o));
}

#[test]
fn recover_requeue_redelivers_to_the_consumer() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_bodies(&mut core, &c, "q", &BasicProperties::default(), &["a"]);
    assert_eq!(bodies(&core.consume(&mut c, 1, "q", "k", false)), vec!["a"]);
    let got = core.call(
        &mut c,
        1,
        Method::BasicRecover(amqp_codec::BasicRecover { requeue: true }),
    );
    assert!(got
        .iter()
        .any(|o| matches!(o, Out::Method(1, Method::BasicRecoverOk(_)))));
    let again: Vec<&Out> = got
        .iter()
        .filter(|o| matches!(o, Out::Content { .. }))
        .collect();
    assert_eq!(again.len(), 1);
    assert!(redelivered(again[0]));
}

#[test]
fn tx_commit_applies_and_rollback_discards() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    let got = core.call(&mut c, 1, Method::TxSelect(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::TxSelectOk(_))]
    ));
    publish_bodies(
        &mut core,
        &c,
        "q",
        &BasicProperties::default(),
        &["rolled-back"],
    );
    let got = core.call(&mut c, 1, Method::TxRollback(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::TxRollbackOk(_))]
    ));
    publish_bodies(&mut core, &c, "q", &BasicProperties::default(), &["kept"]);
    // Not visible before the commit.
    core.open_channel(&mut c, 2);
    let peek = core.call(
        &mut c,
        2,
        Method::BasicGet(amqp_codec::BasicGet {
            queue: "q".into(),
            no_ack: true,
            ..Default::default()
        }),
    );
    assert!(matches!(
        peek.as_slice(),
        [Out::Method(2, Method::BasicGetEmpty(_))]
    ));
    let got = core.call(&mut c, 1, Method::TxCommit(Default::default()));
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::TxCommitOk(_))]),
        "{got:?}"
    );
    let got = core.call(&mut c, 1, Method::TxCommit(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::TxCommitOk(_))]
    ));
    let rest = core.call(
        &mut c,
        2,
        Method::BasicGet(amqp_codec::BasicGet {
            queue: "q".into(),
            no_ack: true,
            ..Default::default()
        }),
    );
    assert_eq!(bodies(&rest), vec!["kept"]);
}

#[test]
fn confirms_for_persistent_messages_wait_for_the_store() {
    let (mut core, mut c) = setup();
    let got = core.call(
        &mut c,
        1,
        Method::QueueDeclare(amqp_codec::QueueDeclare {
            queue: "dq".into(),
            durable: true,
            ..Default::default()
        }),
    );
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::QueueDeclareOk(_))]
    ));
    let got = core.call(&mut c, 1, Method::ConfirmSelect(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::ConfirmSelectOk(_))]
    ));
    publish_bodies(&mut core, &c, "dq", &persistent(), &["p1", "p2"]);
    assert!(
        c.recv().is_empty(),
        "no confirm before the store is durable"
    );
    assert_eq!(core.store.lock().live.len(), 2);
    core.sync();
    let got = c.recv();
    assert_eq!(
        got,
        vec![Out::Method(
            1,
            Method::BasicAck(amqp_codec::BasicAck {
                delivery_tag: 2,
                multiple: true
            })
        )]
    );
    // Transient messages are confirmed at once.
    publish_bodies(&mut core, &c, "dq", &BasicProperties::default(), &["t"]);
    assert!(matches!(
        c.recv().as_slice(),
        [Out::Method(1, Method::BasicAck(a))] if a.delivery_tag == 3
    ));
    // Consuming with ack removes the store's records.
    assert_eq!(drain(&mut core, &mut c, "dq").len(), 3);
    assert!(core.store.lock().live.is_empty());
}

#[test]
fn unroutable_confirm_is_an_ack() {
    let (mut core, mut c) = setup();
    let got = core.call(&mut c, 1, Method::ConfirmSelect(Default::default()));
    assert!(matches!(
        got.as_slice(),
        [Out::Method(1, Method::ConfirmSelectOk(_))]
    ));
    publish_bodies(&mut core, &c, "nowhere", &persistent(), &["x"]);
    assert!(matches!(
        c.recv().as_slice(),
        [Out::Method(1, Method::BasicAck(a))] if a.delivery_tag == 1
    ));
}

/// Settlements buffered by a transaction count against
/// `tx_uncommitted_bytes_max` too (acking the same tag over and over
/// would otherwise grow the buffer without end): 406, and the
/// transaction's acks are not applied.
#[test]
fn tx_settlements_beyond_the_limit_close_the_channel_with_406() {
    let mut core = crate::testkit::Core::new(crate::CoreConfig {
        tx_uncommitted_bytes_max: 64 * 16,
        ..Default::default()
    });
    let mut c = core.connect();
    core.open_channel(&mut c, 1);
    core.declare_queue(&mut c, 1, "q", FieldTable::new());
    publish_bodies(&mut core, &c, "q", &BasicProperties::default(), &["a"]);
    assert_eq!(bodies(&core.consume(&mut c, 1, "q", "k", false)), vec!["a"]);
    core.call(&mut c, 1, Method::TxSelect(Default::default()));
    let ack = Method::BasicAck(amqp_codec::BasicAck {
        delivery_tag: 1,
        multiple: false,
    });
    let mut closed = None;
    for i in 0..100 {
        let got = core.call(&mut c, 1, ack.clone());
        if let Some(Out::Method(1, Method::ChannelClose(cl))) = got.first() {
            closed = Some((i, cl.clone()));
            break;
        }
        assert!(got.is_empty(), "{got:?}");
    }
    let (i, cl) = closed.expect("the transaction was never refused");
    assert!(i > 10, "refused after {i} acks");
    assert_eq!(cl.reply_code, 406);
    assert_eq!(
        cl.reply_text.as_str(),
        "PRECONDITION_FAILED - transaction exceeds tx_uncommitted_bytes_max (1024 bytes): \
         commit or roll back more often"
    );
    assert_eq!((cl.class_id, cl.method_id), (60, 80));
    // The channel's delivery went back to the queue, not acked.
    assert_eq!(core.queue_depth("q"), Some(1));
}
