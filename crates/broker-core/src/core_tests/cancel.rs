//! A consumer the client cancelled never hears of its queue again: no
//! basic.deliver after its cancel-ok and no basic.cancel when the queue is
//! deleted (the report: prefetch 1, acks in flight, cancel, then
//! queue.delete on the same channel). Random sequences of consume, cancel
//! (with and without no-wait), publish, ack / nack / reject with requeue,
//! recover, qos, tx, channel close and queue delete / redeclare, on classic,
//! single-active-consumer, quorum and auto-delete queues, are checked
//! against a model of what the client may see.

use std::collections::{HashMap, HashSet};

use amqp_codec::{BasicProperties, FieldTable, Method, ShortStr};

use crate::testkit::{Core, Out, Wire};

/// xorshift64: deterministic, so a failing seed replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random sequences per seed (a few thousand; about a second).
const SEEDS: u64 = 3_000;
/// Client writes per sequence.
const STEPS: usize = 60;

#[test]
fn a_cancelled_consumer_gets_no_delivery_and_no_cancel() {
    for seed in 1..=SEEDS {
        run(seed);
    }
}

#[test]
fn cancel_with_an_unacked_delivery_then_delete_sends_no_cancel() {
    let mut core = Core::default();
    let mut c = core.connect();
    core.open_channel(&mut c, 1);
    core.input(&c, Wire::new().method(1, declare("q1")));
    c.recv();
    let qos = Method::BasicQos(amqp_codec::BasicQos {
        prefetch_count: 1,
        ..Default::default()
    });
    assert_eq!(core.call(&mut c, 1, qos).len(), 1);
    let mut w = Wire::new();
    for b in ["a", "b", "c"] {
        w = w.publish(1, "", "q1", &BasicProperties::default(), b.as_bytes());
    }
    core.input(&c, w);
    assert_eq!(
        crate::testkit::bodies(&core.consume(&mut c, 1, "q1", "k", false)),
        ["a"]
    );
    // Cancel, ack the delivery (credit comes back) and delete in one write.
    let w = Wire::new()
        .method(
            1,
            Method::BasicCancel(amqp_codec::BasicCancel {
                consumer_tag: ShortStr::from("k"),
                no_wait: false,
            }),
        )
        .method(
            1,
            Method::BasicAck(amqp_codec::BasicAck {
                delivery_tag: 1,
                multiple: false,
            }),
        )
        .method(
            1,
            Method::QueueDelete(amqp_codec::QueueDelete {
                queue: ShortStr::from("q1"),
                ..Default::default()
            }),
        );
    core.input(&c, w);
    let got: Vec<Method> = c.recv().iter().map(|o| o.method().clone()).collect();
    assert!(
        matches!(
            got.as_slice(),
            [Method::BasicCancelOk(_), Method::QueueDeleteOk(d)] if d.message_count == 2
        ),
        "{got:?}"
    );
}

fn run(seed: u64) {
    let mut r = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut core = Core::default();
    let mut c = core.connect();
    let chans = [1u16, 2];
    for ch in chans {
        core.open_channel(&mut c, ch);
    }
    let queues = ["q1", "q2", "q3", "q4"];
    let tags = ["a", "b"];
    let mut log: Vec<String> = Vec::new();
    // client view: (ch, tag) -> active (consume-ok seen, no cancel sent)
    let mut active: HashSet<(u16, String)> = HashSet::new();
    // (ch, tag) cancel sent, awaiting cancel-ok
    let mut cancelling: HashSet<(u16, String)> = HashSet::new();
    let mut unacked: HashMap<u16, Vec<u64>> = HashMap::new();
    let mut open: HashSet<u16> = chans.iter().copied().collect();
    for q in queues {
        core.input(&c, Wire::new().method(1, declare(q)));
        c.recv();
    }
    for _step in 0..STEPS {
        let ch = chans[r.pick(2) as usize];
        if !open.contains(&ch) {
            core.open_channel(&mut c, ch);
            open.insert(ch);
            unacked.remove(&ch);
            continue;
        }
        let q = queues[r.pick(4) as usize];
        let tag = tags[r.pick(2) as usize];
        let mut w = Wire::new();
        let op = r.pick(11);
        let desc;
        match op {
            0 | 1 => {
                let n = 1 + r.pick(3);
                for i in 0..n {
                    w = w.publish(
                        ch,
                        "",
                        q,
                        &BasicProperties::default(),
                        format!("m{i}").as_bytes(),
                    );
                }
                desc = format!("ch{ch} publish {n} to {q}");
            }
            2 => {
                w = w.method(
                    ch,
                    Method::BasicQos(amqp_codec::BasicQos {
                        prefetch_count: 1 + r.pick(2) as u16,
                        global: r.pick(20) == 0,
                        ..Default::default()
                    }),
                );
                desc = format!("ch{ch} qos");
            }
            3 => {
                if active.contains(&(ch, tag.to_string()))
                    || cancelling.contains(&(ch, tag.to_string()))
                {
                    continue;
                }
                let mut args = FieldTable::new();
                if r.pick(2) == 0 {
                    args.insert(
                        ShortStr::from("x-priority"),
                        amqp_codec::FieldValue::I32(r.pick(3) as i32),
                    );
                }
                w = w.method(
                    ch,
                    Method::BasicConsume(amqp_codec::BasicConsume {
                        queue: ShortStr::from(q),
                        consumer_tag: ShortStr::from(tag),
                        no_ack: r.pick(4) == 0,
                        exclusive: r.pick(6) == 0,
                        arguments: args,
                        ..Default::default()
                    }),
                );
                desc = format!("ch{ch} consume {q} {tag}");
            }
            4 => {
                let nw = r.pick(2) == 0;
                w = w.method(
                    ch,
                    Method::BasicCancel(amqp_codec::BasicCancel {
                        consumer_tag: ShortStr::from(tag),
                        no_wait: nw,
                    }),
                );
                active.remove(&(ch, tag.to_string()));
                if !nw {
                    cancelling.insert((ch, tag.to_string()));
                }
                desc = format!("ch{ch} cancel {tag} nowait={nw}");
            }
            5 | 6 => {
                let list = unacked.entry(ch).or_default();
                if list.is_empty() {
                    continue;
                }
                let i = r.pick(list.len() as u64) as usize;
                let t = list.remove(i);
                let m = match r.pick(4) {
                    0 => Method::BasicNack(amqp_codec::BasicNack {
                        delivery_tag: t,
                        multiple: false,
                        requeue: true,
                    }),
                    1 => Method::BasicReject(amqp_codec::BasicReject {
                        delivery_tag: t,
                        requeue: true,
                    }),
                    _ => Method::BasicAck(amqp_codec::BasicAck {
                        delivery_tag: t,
                        multiple: false,
                    }),
                };
                desc = format!("ch{ch} settle {t} {m:?}");
                w = w.method(ch, m);
            }
            7 => {
                w = w.method(
                    ch,
                    Method::QueueDelete(amqp_codec::QueueDelete {
                        queue: ShortStr::from(q),
                        ..Default::default()
                    }),
                );
                desc = format!("ch{ch} delete {q}");
            }
            8 => {
                w = w.method(ch, declare(q));
                desc = format!("ch{ch} declare {q}");
            }
            9 if r.pick(2) == 0 => {
                w = w.method(ch, Method::TxSelect(Default::default()));
                desc = format!("ch{ch} tx.select");
            }
            9 if r.pick(2) == 0 => {
                w = w.method(ch, Method::TxCommit(Default::default()));
                desc = format!("ch{ch} tx.commit");
            }
            9 => {
                w = w.method(
                    ch,
                    Method::BasicRecover(amqp_codec::BasicRecover { requeue: true }),
                );
                unacked.remove(&ch);
                desc = format!("ch{ch} recover");
            }
            _ => {
                w = w.method(ch, Method::ChannelClose(Default::default()));
                desc = format!("ch{ch} close");
            }
        }
        log.push(desc);
        core.input(&c, w);
        for o in c.recv() {
            let (och, m) = match &o {
                Out::Method(och, m) => (*och, m.clone()),
                Out::Content {
                    channel, method, ..
                } => (*channel, method.clone()),
            };
            log.push(format!("  <- ch{och} {m:?}"));
            match m {
                Method::BasicConsumeOk(k) => {
                    active.insert((och, k.consumer_tag.to_string()));
                }
                Method::BasicCancelOk(k) => {
                    cancelling.remove(&(och, k.consumer_tag.to_string()));
                }
                Method::BasicCancel(k) => {
                    let key = (och, k.consumer_tag.to_string());
                    assert!(
                        active.contains(&key),
                        "seed {seed}: broker cancel for inactive {key:?}\n{}",
                        log.join("\n")
                    );
                    active.remove(&key);
                }
                Method::BasicDeliver(d) => {
                    let key = (och, d.consumer_tag.to_string());
                    assert!(
                        active.contains(&key) || cancelling.contains(&key),
                        "seed {seed}: deliver for inactive {key:?}\n{}",
                        log.join("\n")
                    );
                    unacked.entry(och).or_default().push(d.delivery_tag);
                }
                // A connection exception (a global qos on the quorum
                // queue) ends the sequence.
                Method::ConnectionClose(_) => return,
                Method::ChannelClose(_) | Method::ChannelCloseOk(_) => {
                    open.remove(&och);
                    active.retain(|(x, _)| *x != och);
                    cancelling.retain(|(x, _)| *x != och);
                    unacked.remove(&och);
                    if matches!(m, Method::ChannelClose(_)) {
                        core.input(
                            &c,
                            Wire::new().method(och, Method::ChannelCloseOk(Default::default())),
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

fn declare(q: &str) -> Method {
    let mut args = FieldTable::new();
    let mut durable = false;
    let mut auto_delete = false;
    match q {
        "q2" => {
            args.insert(
                ShortStr::from("x-single-active-consumer"),
                amqp_codec::FieldValue::Bool(true),
            );
        }
        "q3" => {
            args.insert(
                ShortStr::from("x-queue-type"),
                amqp_codec::FieldValue::LongStr(bytes::Bytes::from_static(b"quorum")),
            );
            durable = true;
        }
        "q4" => auto_delete = true,
        _ => {}
    }
    Method::QueueDeclare(amqp_codec::QueueDeclare {
        queue: ShortStr::from(q),
        durable,
        auto_delete,
        arguments: args,
        ..Default::default()
    })
}
