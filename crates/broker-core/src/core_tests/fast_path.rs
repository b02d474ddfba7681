//! The publish fast paths (`publish_from_wire`, the publish cache, direct
//! delivery, the lone-consumer loop) against the general frame-by-frame
//! path: the same random client traffic fed to two cores, one with the fast
//! path and one without, must produce identical output for every client —
//! deliveries, returns, confirms, errors — and identical queue depths.
//!
//! The traffic covers plain, length-limited, priority, quorum (delivery
//! limit, dead-lettering), deduplicating and single-active-consumer queues,
//! consumers with `x-priority`, a delayed exchange (mandatory publishes
//! included) with the shared test clock advanced in some steps, and a
//! consumer that acks, nacks with requeue and rejects. The traffic itself
//! is in `fast_path_traffic.rs`.

use amqp_codec::{FieldTable, FieldValue, Method, ShortStr};

use super::fast_path_traffic::{consumer_step, dedup_key, publisher_step, Rng, Seen, Tracker};
use super::*;
use crate::testkit::{advance_clock_ms, Client, Core, Out, Wire};

/// Every queue of the traffic (arguments in `queue_args`); qb, qe (TTL,
/// dead letters into qdl) and qd (deduplicating) are read with basic.get
/// only.
pub(super) const QUEUES: [&str; 9] = ["qa", "qb", "qc", "qp", "qq", "qdl", "qd", "qs", "qe"];

fn queue_args(q: &str) -> (bool, FieldTable) {
    match q {
        "qb" => (true, table(&[("x-max-length", FieldValue::I32(5))])),
        "qc" => (false, FieldTable::new()),
        "qp" => (
            true,
            table(&[
                ("x-max-priority", FieldValue::I32(5)),
                ("x-max-length", FieldValue::I32(4)),
                ("x-dead-letter-exchange", long_str("")),
                ("x-dead-letter-routing-key", long_str("qdl")),
            ]),
        ),
        "qq" => (
            true,
            table(&[
                ("x-queue-type", long_str("quorum")),
                ("x-delivery-limit", FieldValue::I32(2)),
                ("x-dead-letter-exchange", long_str("")),
                ("x-dead-letter-routing-key", long_str("qdl")),
            ]),
        ),
        "qd" => (
            false,
            table(&[
                ("x-message-deduplication", FieldValue::Bool(true)),
                ("x-cache-size", FieldValue::I32(3)),
            ]),
        ),
        "qs" => (
            false,
            table(&[("x-single-active-consumer", FieldValue::Bool(true))]),
        ),
        "qe" => (
            false,
            table(&[
                ("x-message-ttl", FieldValue::I32(40)),
                ("x-dead-letter-exchange", long_str("")),
                ("x-dead-letter-routing-key", long_str("qdl")),
            ]),
        ),
        _ => (true, FieldTable::new()),
    }
}

/// One consumer of the consumer connection: (channel, queue, tag, no_ack,
/// x-priority, prefetch).
type ConsumerSpec = (u16, &'static str, &'static str, bool, Option<i32>, u16);

/// The consumer connection's consumers.
fn consumers(seed: u64) -> Vec<ConsumerSpec> {
    vec![
        // Auto-ack on qa (direct delivery).
        (1, "qa", "auto", true, None, 0),
        (2, "qc", "manual", seed.is_multiple_of(2), None, 0),
        // A higher-priority consumer on qc with prefetch 1: one message,
        // then qc falls back to "manual".
        (3, "qc", "high", false, Some(5), 1),
        (3, "qp", "prio", false, None, 1),
        (4, "qq", "quorum", false, None, 3),
        (5, "qs", "sac-a", false, Some(1), 2),
        (6, "qs", "sac-b", true, Some(3), 0),
        // Every dead letter (qp maxlen, qq delivery_limit and rejected,
        // qe expired) is read here.
        (6, "qdl", "dead", true, None, 0),
    ]
}

pub(super) struct Side {
    pub(super) core: Core,
    pub(super) publisher: Client,
    pub(super) consumer: Client,
    /// The publisher's user: guest, or (some seeds) one that may not
    /// publish to x.fanout, so refusals are compared too.
    publisher_user: &'static str,
}

/// The restricted publisher's user.
const RESTRICTED: &str = "restricted";

/// Seeds whose publisher is [`RESTRICTED`].
fn restricted(seed: u64) -> bool {
    seed % 4 == 1
}

fn side(fast_path: bool, confirm: bool, seed: u64) -> Side {
    let mut core = Core {
        fast_path,
        ..Core::default()
    };
    let publisher_user = if restricted(seed) {
        let b = &mut core.broker;
        b.add_user(crate::access::UserRecord::with_password(
            RESTRICTED,
            "pw",
            vec![],
        ))
        .unwrap();
        b.set_permissions(crate::access::PermissionRecord {
            user: RESTRICTED.into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: r"^(amq\.default|x\.direct|x\.delayed|q.*)$".into(),
            read: ".*".into(),
        })
        .unwrap();
        RESTRICTED
    } else {
        "guest"
    };
    let mut publisher = core.connect_unchecked(publisher_user, "/");
    let mut consumer = core.connect();
    core.open_channel(&mut publisher, 1);
    for ch in 1..=6 {
        core.open_channel(&mut consumer, ch);
    }
    for q in QUEUES {
        let (durable, arguments) = queue_args(q);
        let got = core.call(
            &mut publisher,
            1,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: ShortStr::from(q),
                durable,
                arguments,
                ..Default::default()
            }),
        );
        assert!(
            matches!(got.as_slice(), [Out::Method(1, Method::QueueDeclareOk(_))]),
            "{q}: {got:?}"
        );
    }
    declare_exchange(&mut core, &mut publisher, "x.direct", "direct");
    declare_exchange(&mut core, &mut publisher, "x.fanout", "fanout");
    super::delayed::declare_delayed(&mut core, &mut publisher, "x.delayed", "direct", true, &[]);
    let none = FieldTable::new;
    bind(&mut core, &mut publisher, "qa", "x.fanout", "", none());
    bind(&mut core, &mut publisher, "qc", "x.fanout", "", none());
    bind(&mut core, &mut publisher, "qp", "x.fanout", "", none());
    bind(&mut core, &mut publisher, "qb", "x.direct", "k1", none());
    bind(&mut core, &mut publisher, "qq", "x.direct", "k1", none());
    bind(&mut core, &mut publisher, "qa", "x.delayed", "qa", none());
    bind(&mut core, &mut publisher, "qq", "x.delayed", "k1", none());
    bind(&mut core, &mut publisher, "qs", "x.delayed", "k1", none());
    if confirm {
        assert_eq!(
            core.call(&mut publisher, 1, Method::ConfirmSelect(Default::default()))
                .len(),
            1
        );
    }
    for (ch, q, tag, no_ack, prio, prefetch) in consumers(seed) {
        if prefetch > 0 {
            let qos = Method::BasicQos(amqp_codec::BasicQos {
                prefetch_count: prefetch,
                ..Default::default()
            });
            assert_eq!(core.call(&mut consumer, ch, qos).len(), 1);
        }
        let got = core.call(
            &mut consumer,
            ch,
            Method::BasicConsume(amqp_codec::BasicConsume {
                queue: ShortStr::from(q),
                consumer_tag: ShortStr::from(tag),
                no_ack,
                arguments: prio.map_or_else(FieldTable::new, |p| {
                    table(&[("x-priority", FieldValue::I32(p))])
                }),
                ..Default::default()
            }),
        );
        assert!(
            matches!(got.as_slice(), [Out::Method(_, Method::BasicConsumeOk(_))]),
            "{tag}: {got:?}"
        );
    }
    Side {
        core,
        publisher,
        consumer,
        publisher_user,
    }
}

fn depths(core: &Core) -> Vec<u32> {
    QUEUES
        .iter()
        .map(|q| core.queue_depth(q).unwrap_or(u32::MAX))
        .collect()
}

/// Reopens the publisher's channel 1 after an error closed it (or the
/// connection after a connection error), on both sides alike.
fn reopen_publisher(s: &mut Side, conn_closed: bool, confirm: bool) {
    if conn_closed {
        let again = s.core.connect_unchecked(s.publisher_user, "/");
        let old = std::mem::replace(&mut s.publisher, again);
        s.core.disconnect(old);
    } else {
        let close_ok = Method::ChannelCloseOk(Default::default());
        assert!(s.core.call(&mut s.publisher, 1, close_ok).is_empty());
    }
    s.core.open_channel(&mut s.publisher, 1);
    if confirm {
        let select = Method::ConfirmSelect(Default::default());
        assert_eq!(s.core.call(&mut s.publisher, 1, select).len(), 1);
    }
}

#[test]
fn fast_and_general_paths_agree() {
    const SEEDS: u64 = 40;
    const STEPS: usize = 60;
    let mut steps_compared = 0;
    let mut fast_outputs = 0;
    let mut fast_taken = 0;
    let mut seen = Seen::default();
    let mut refused = 0;
    for seed in 1..=SEEDS {
        let confirm = seed % 3 != 0;
        let mut fast = side(true, confirm, seed);
        let mut slow = side(false, confirm, seed);
        let manual: Vec<u16> = consumers(seed)
            .iter()
            .filter(|c| !c.3)
            .map(|c| c.0)
            .collect();
        let mut tracker = Tracker::new(&manual);
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for step in 0..STEPS {
            let w = publisher_step(&mut r, 1, &mut seen);
            fast.core.input(&fast.publisher, w.clone());
            slow.core.input(&slow.publisher, w);
            if let Some(w) = consumer_step(&mut r, &mut tracker, &mut seen) {
                fast.core.input(&fast.consumer, w.clone());
                slow.core.input(&slow.consumer, w);
            }
            if r.below(5) == 0 {
                fast.core.sync();
                slow.core.sync();
            }
            if r.below(3) == 0 {
                // One clock shared by both cores: move it once, tick each.
                advance_clock_ms(r.below(80));
                fast.core.tick();
                slow.core.tick();
            }
            let (fp, sp) = (fast.publisher.recv(), slow.publisher.recv());
            let (fc, sc) = (fast.consumer.recv(), slow.consumer.recv());
            assert_eq!(fp, sp, "seed {seed} step {step}: publisher output differs");
            assert_eq!(fc, sc, "seed {seed} step {step}: consumer output differs");
            assert_eq!(
                depths(&fast.core),
                depths(&slow.core),
                "seed {seed} step {step}: queue depths differ"
            );
            assert!(
                channel_close(&fc).is_none(),
                "seed {seed} step {step}: the consumer's traffic must stay valid: {fc:?}"
            );
            refused += fp
                .iter()
                .filter(|o| {
                    matches!(o.method(), Method::ChannelClose(c)
                        if c.reply_text.as_str() == "ACCESS_REFUSED - access to exchange 'x.fanout' in vhost '/' refused for user 'restricted'")
                })
                .count();
            tracker.delivered(&fc);
            seen.outputs(&fp, &fc);
            fast_outputs += fp.len() + fc.len();
            steps_compared += 1;
            let conn_closed = fp
                .iter()
                .any(|o| matches!(o, Out::Method(0, Method::ConnectionClose(_))));
            if conn_closed || channel_close(&fp).is_some() {
                reopen_publisher(&mut fast, conn_closed, confirm);
                reopen_publisher(&mut slow, conn_closed, confirm);
            }
        }
        fast_taken += fast.core.fast_path_taken;
        assert_eq!(slow.core.fast_path_taken, 0);
        // Deduplication is on in this run: the same key twice adds at most
        // one message, on both sides.
        for s in [&mut fast, &mut slow] {
            let before = s.core.queue_depth("qd").unwrap_or(0);
            let p = dedup_key("again");
            let w = Wire::new()
                .publish(1, "", "qd", &p, b"d1")
                .publish(1, "", "qd", &p, b"d2");
            s.core.input(&s.publisher, w);
            let _ = s.publisher.recv();
            assert_eq!(s.core.queue_depth("qd"), Some(before + 1), "seed {seed}");
        }
    }
    // Anti-vacuity: the traffic produced real output to compare, the fast
    // path ran, and every feature was exercised.
    assert_eq!(steps_compared, SEEDS as usize * STEPS);
    assert!(
        refused > 10,
        "only {refused} publishes refused for lack of permission"
    );
    assert!(fast_outputs > 4000, "only {fast_outputs} frames compared");
    assert!(
        fast_taken > 200,
        "the fast path took only {fast_taken} publishes"
    );
    eprintln!("compared {fast_outputs} frames, fast path {fast_taken}: {seen:?}");
    seen.assert_covered();
}
