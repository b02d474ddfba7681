//! The publish fast paths (`publish_from_wire`, the publish cache, direct
//! delivery, the lone-consumer loop) against the general frame-by-frame
//! path: the same random client traffic fed to two cores, one with the fast
//! path and one without, must produce identical output for every client —
//! deliveries, returns, confirms, errors — and identical queue depths.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::*;
use crate::testkit::{Client, Core, Out, Wire};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const QUEUES: [&str; 3] = ["qa", "qb", "qc"];
const KEYS: [&str; 4] = ["qa", "qb", "k1", "nope"];
const EXCHANGES: [&str; 4] = ["", "x.direct", "x.fanout", "missing"];

/// One random step of client traffic, as the bytes of one socket read.
fn random_step(r: &mut Rng, ch: u16) -> Wire {
    let mut w = Wire::new();
    let n = 1 + r.below(6);
    for _ in 0..n {
        let ex = EXCHANGES[r.below(4) as usize];
        let key = KEYS[r.below(4) as usize];
        let props = match r.below(4) {
            0 => BasicProperties {
                delivery_mode: Some(2),
                ..Default::default()
            },
            1 => BasicProperties {
                expiration: Some(ShortStr::from("0")),
                ..Default::default()
            },
            _ => BasicProperties::default(),
        };
        let body = vec![b'x'; r.below(40) as usize];
        w = match r.below(14) {
            0..=5 => w.publish(ch, ex, key, &props, &body),
            6 | 7 => w.publish_mandatory(ch, ex, key, &props, &body),
            8 => w.method(
                ch,
                Method::BasicGet(amqp_codec::BasicGet {
                    queue: ShortStr::from(QUEUES[r.below(3) as usize]),
                    no_ack: r.below(2) == 0,
                    ..Default::default()
                }),
            ),
            9 => w.method(
                ch,
                Method::BasicAck(amqp_codec::BasicAck {
                    delivery_tag: 0,
                    multiple: true,
                }),
            ),
            10 => w.method(
                ch,
                Method::QueueBind(amqp_codec::QueueBind {
                    queue: ShortStr::from(QUEUES[r.below(3) as usize]),
                    exchange: ShortStr::from("x.direct"),
                    routing_key: ShortStr::from(KEYS[r.below(4) as usize]),
                    ..Default::default()
                }),
            ),
            11 => w.method(
                ch,
                Method::QueueUnbind(amqp_codec::QueueUnbind {
                    queue: ShortStr::from(QUEUES[r.below(3) as usize]),
                    exchange: ShortStr::from("x.direct"),
                    routing_key: ShortStr::from(KEYS[r.below(4) as usize]),
                    ..Default::default()
                }),
            ),
            12 => w.method(
                ch,
                Method::QueuePurge(amqp_codec::QueuePurge {
                    queue: ShortStr::from(QUEUES[r.below(3) as usize]),
                    ..Default::default()
                }),
            ),
            _ => w.method(
                ch,
                Method::BasicQos(amqp_codec::BasicQos {
                    prefetch_count: r.below(4) as u16,
                    ..Default::default()
                }),
            ),
        };
    }
    w
}

struct Side {
    core: Core,
    publisher: Client,
    consumer: Client,
}

fn side(fast_path: bool, confirm: bool, seed: u64) -> Side {
    let mut core = Core {
        fast_path,
        ..Core::default()
    };
    let mut publisher = core.connect();
    let mut consumer = core.connect();
    core.open_channel(&mut publisher, 1);
    core.open_channel(&mut consumer, 1);
    core.open_channel(&mut consumer, 2);
    for q in QUEUES {
        let durable = q != "qc";
        let got = core.call(
            &mut publisher,
            1,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: ShortStr::from(q),
                durable,
                arguments: if q == "qb" {
                    table(&[("x-max-length", FieldValue::I32(5))])
                } else {
                    FieldTable::new()
                },
                ..Default::default()
            }),
        );
        assert_eq!(got.len(), 1);
    }
    declare_exchange(&mut core, &mut publisher, "x.direct", "direct");
    declare_exchange(&mut core, &mut publisher, "x.fanout", "fanout");
    bind(
        &mut core,
        &mut publisher,
        "qa",
        "x.fanout",
        "",
        FieldTable::new(),
    );
    bind(
        &mut core,
        &mut publisher,
        "qc",
        "x.fanout",
        "",
        FieldTable::new(),
    );
    bind(
        &mut core,
        &mut publisher,
        "qb",
        "x.direct",
        "k1",
        FieldTable::new(),
    );
    if confirm {
        assert_eq!(
            core.call(&mut publisher, 1, Method::ConfirmSelect(Default::default()))
                .len(),
            1
        );
    }
    // An auto-ack consumer on qa (direct delivery) and a manual-ack one on
    // qc; qb is read with basic.get only.
    let _ = core.consume(&mut consumer, 1, "qa", "auto", true);
    let _ = core.consume(&mut consumer, 2, "qc", "manual", seed.is_multiple_of(2));
    Side {
        core,
        publisher,
        consumer,
    }
}

fn depths(core: &Core) -> Vec<u32> {
    QUEUES
        .iter()
        .map(|q| core.queue_depth(q).unwrap_or(u32::MAX))
        .collect()
}

#[test]
fn fast_and_general_paths_agree() {
    let mut steps_compared = 0;
    let mut fast_outputs = 0;
    let mut fast_taken = 0;
    for seed in 1..=40u64 {
        let confirm = seed % 3 != 0;
        let mut fast = side(true, confirm, seed);
        let mut slow = side(false, confirm, seed);
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for step in 0..60 {
            // Most steps publish on the publisher's channel; some reopen it
            // after an error closed it.
            let w = random_step(&mut r, 1);
            fast.core.input(&fast.publisher, w.clone());
            slow.core.input(&slow.publisher, w);
            if r.below(5) == 0 {
                fast.core.sync();
                slow.core.sync();
            }
            let (fp, sp) = (fast.publisher.recv(), slow.publisher.recv());
            let (fc, sc) = (fast.consumer.recv(), slow.consumer.recv());
            assert_eq!(fp, sp, "seed {seed} step {step}: publisher output differs");
            assert_eq!(fc, sc, "seed {seed} step {step}: consumer output differs");
            assert_eq!(
                depths(&fast.core),
                depths(&slow.core),
                "seed {seed} step {step}"
            );
            fast_outputs += fp.len() + fc.len();
            fast_taken = fast.core.fast_path_taken;
            steps_compared += 1;
            let conn_closed = fp
                .iter()
                .any(|o| matches!(o, Out::Method(0, Method::ConnectionClose(_))));
            if conn_closed || channel_close(&fp).is_some() {
                for s in [&mut fast, &mut slow] {
                    if conn_closed {
                        let old = std::mem::replace(&mut s.publisher, s.core.connect());
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
            }
        }
    }
    // Anti-vacuity: the traffic produced real output to compare.
    assert_eq!(steps_compared, 40 * 60);
    assert!(fast_outputs > 2000, "only {fast_outputs} frames compared");
    assert!(
        fast_taken > 20,
        "the fast path took only {fast_taken} publishes"
    );
}
