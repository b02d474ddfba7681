//! Random client traffic for the fast/general differential (`fast_path.rs`):
//! the publisher's steps, the consumer's settlements (tracked so they are
//! always valid), and what the traffic covered (anti-vacuity).

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use super::fast_path::QUEUES;
use super::table;
use crate::testkit::{Out, Wire};

pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Routing keys: every queue name (default exchange), the direct and
/// delayed exchanges' binding key, and one bound nowhere.
const KEYS: [&str; 11] = [
    "qa", "qb", "qc", "qp", "qq", "qd", "qs", "qe", "qdl", "k1", "nope",
];
pub(super) const EXCHANGES: [&str; 5] = ["", "x.direct", "x.fanout", "missing", "x.delayed"];
/// Exchanges the traffic binds to and unbinds from.
const BINDABLE: [&str; 2] = ["x.direct", "x.delayed"];
/// `x-delay` values: routed at once (0, negative) or after the delay (ms).
const DELAYS_MS: [i64; 5] = [0, 10, 50, 120, -5];
const DEDUP_KEYS: [&str; 4] = ["a", "b", "c", "d"];

/// Properties carrying the deduplication key `key`.
pub(super) fn dedup_key(key: &str) -> BasicProperties {
    BasicProperties {
        headers: Some(table(&[("x-deduplication-header", super::long_str(key))])),
        ..Default::default()
    }
}

fn random_props(r: &mut Rng) -> BasicProperties {
    let mut p = BasicProperties::default();
    if r.below(3) == 0 {
        p.delivery_mode = Some(2);
    }
    match r.below(8) {
        0 => p.expiration = Some(ShortStr::from("0")),
        1 => p.expiration = Some(ShortStr::from("30")),
        _ => {}
    }
    if r.below(2) == 0 {
        p.priority = Some(r.below(8) as u8);
    }
    if r.below(2) == 0 {
        let mut h = FieldTable::new();
        if r.below(2) == 0 {
            h.insert(
                ShortStr::from("x-delay"),
                FieldValue::I64(r.pick(&DELAYS_MS)),
            );
        }
        if r.below(2) == 0 {
            h.insert(
                ShortStr::from("x-deduplication-header"),
                super::long_str(r.pick(&DEDUP_KEYS)),
            );
        }
        p.headers = Some(h);
    }
    p
}

/// One random step of the publisher, as the bytes of one socket read.
pub(super) fn publisher_step(r: &mut Rng, ch: u16, seen: &mut Seen) -> Wire {
    let mut w = Wire::new();
    let n = 1 + r.below(6);
    for _ in 0..n {
        let ex = r.pick(&EXCHANGES);
        let key = r.pick(&KEYS);
        let props = random_props(r);
        let body = vec![b'x'; r.below(40) as usize];
        w = match r.below(14) {
            0..=5 => w.publish(ch, ex, key, &props, &body),
            6 | 7 => {
                seen.mandatory_delayed += usize::from(ex == "x.delayed");
                w.publish_mandatory(ch, ex, key, &props, &body)
            }
            8 => w.method(
                ch,
                Method::BasicGet(amqp_codec::BasicGet {
                    queue: ShortStr::from(r.pick(&QUEUES)),
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
                    queue: ShortStr::from(r.pick(&QUEUES)),
                    exchange: ShortStr::from(r.pick(&BINDABLE)),
                    routing_key: ShortStr::from(r.pick(&KEYS)),
                    ..Default::default()
                }),
            ),
            11 => w.method(
                ch,
                Method::QueueUnbind(amqp_codec::QueueUnbind {
                    queue: ShortStr::from(r.pick(&QUEUES)),
                    exchange: ShortStr::from(r.pick(&BINDABLE)),
                    routing_key: ShortStr::from(r.pick(&KEYS)),
                    ..Default::default()
                }),
            ),
            12 => w.method(
                ch,
                Method::QueuePurge(amqp_codec::QueuePurge {
                    queue: ShortStr::from(r.pick(&QUEUES)),
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

/// Delivery tags the consumer holds unsettled, per manual-ack channel.
pub(super) struct Tracker {
    /// (channel, its unsettled tags in delivery order).
    outstanding: Vec<(u16, Vec<u64>)>,
}

impl Tracker {
    pub(super) fn new(manual_channels: &[u16]) -> Tracker {
        let mut outstanding: Vec<(u16, Vec<u64>)> =
            manual_channels.iter().map(|c| (*c, Vec::new())).collect();
        outstanding.dedup_by_key(|(c, _)| *c);
        Tracker { outstanding }
    }

    /// Records the deliveries in the consumer's output. A recover-ok
    /// settles what its channel held, deliveries before it in the same
    /// output included (the core dispatched those before the recover).
    pub(super) fn delivered(&mut self, outs: &[Out]) {
        for o in outs {
            if let Out::Method(channel, Method::BasicRecoverOk(_)) = o {
                if let Some((_, tags)) = self.outstanding.iter_mut().find(|(c, _)| c == channel) {
                    tags.clear();
                }
            }
            if let Out::Content {
                channel,
                method: Method::BasicDeliver(d),
                ..
            } = o
            {
                if let Some((_, tags)) = self.outstanding.iter_mut().find(|(c, _)| c == channel) {
                    tags.push(d.delivery_tag);
                }
            }
        }
    }
}

/// Maybe some settlements by the consumer, as one socket read; only tags
/// it holds, so its channels are never closed by an error.
pub(super) fn consumer_step(r: &mut Rng, t: &mut Tracker, seen: &mut Seen) -> Option<Wire> {
    if r.below(2) == 0 || t.outstanding.is_empty() {
        return None;
    }
    let mut w = Wire::new();
    let mut any = false;
    if r.below(6) == 0 {
        // A single-active consumer leaves and comes back (at the end of
        // the queue's consumer list): the other one becomes active.
        let (ch, tag, no_ack, prio) = r.pick(&[(5, "sac-a", false, 1), (6, "sac-b", true, 3)]);
        seen.sac_handovers += 1;
        w = w
            .method(
                ch,
                Method::BasicCancel(amqp_codec::BasicCancel {
                    consumer_tag: ShortStr::from(tag),
                    no_wait: false,
                }),
            )
            .method(
                ch,
                Method::BasicConsume(amqp_codec::BasicConsume {
                    queue: ShortStr::from("qs"),
                    consumer_tag: ShortStr::from(tag),
                    no_ack,
                    arguments: table(&[("x-priority", FieldValue::I32(prio))]),
                    ..Default::default()
                }),
            );
        any = true;
    }
    for _ in 0..1 + r.below(3) {
        let i = r.below(t.outstanding.len() as u64) as usize;
        let (ch, tags) = &mut t.outstanding[i];
        let ch = *ch;
        let (Some(&first), Some(&last)) = (tags.first(), tags.last()) else {
            continue;
        };
        any = true;
        let m = match r.below(6) {
            0 => {
                tags.remove(0);
                Method::BasicAck(amqp_codec::BasicAck {
                    delivery_tag: first,
                    multiple: false,
                })
            }
            1 => {
                tags.clear();
                Method::BasicAck(amqp_codec::BasicAck {
                    delivery_tag: last,
                    multiple: true,
                })
            }
            2 => {
                tags.pop();
                seen.nacks_requeue += 1;
                Method::BasicNack(amqp_codec::BasicNack {
                    delivery_tag: last,
                    multiple: false,
                    requeue: true,
                })
            }
            3 => {
                tags.clear();
                seen.nacks_requeue += 1;
                Method::BasicNack(amqp_codec::BasicNack {
                    delivery_tag: last,
                    multiple: true,
                    requeue: true,
                })
            }
            4 => {
                tags.remove(0);
                seen.rejects += 1;
                Method::BasicReject(amqp_codec::BasicReject {
                    delivery_tag: first,
                    requeue: r.below(2) == 0,
                })
            }
            _ => {
                // Settled at its recover-ok (see `delivered`).
                tags.clear();
                Method::BasicRecover(amqp_codec::BasicRecover { requeue: true })
            }
        };
        w = w.method(ch, m);
    }
    any.then_some(w)
}

/// What the compared traffic covered, so the test shows every feature ran.
#[derive(Default, Debug)]
pub(super) struct Seen {
    /// Mandatory publishes to the delayed exchange sent.
    pub(super) mandatory_delayed: usize,
    /// basic.return for a publish to the delayed exchange.
    pub(super) delayed_returns: usize,
    /// Messages delivered after their delay (`x-delay` negated).
    pub(super) delayed_fired: usize,
    /// Deliveries carrying `x-delivery-count` >= 1 (quorum returns).
    pub(super) counted: usize,
    /// Dead letters read, by reason: delivery_limit, expired, maxlen,
    /// rejected.
    pub(super) dead: [usize; 4],
    /// Deliveries to the x-priority consumer, the priority queue's
    /// consumer, and each single-active consumer.
    pub(super) by_tag: [usize; 4],
    /// nacks with requeue and rejects the consumer sent.
    pub(super) nacks_requeue: usize,
    pub(super) rejects: usize,
    /// Single-active consumers cancelled and consumed again.
    pub(super) sac_handovers: usize,
}

const TAGS: [&str; 4] = ["high", "prio", "sac-a", "sac-b"];
const REASONS: [&str; 4] = ["delivery_limit", "expired", "maxlen", "rejected"];

impl Seen {
    pub(super) fn outputs(&mut self, publisher: &[Out], consumer: &[Out]) {
        for o in publisher.iter().chain(consumer) {
            let Out::Content {
                method, properties, ..
            } = o
            else {
                continue;
            };
            match method {
                Method::BasicReturn(r) if r.exchange.as_str() == "x.delayed" => {
                    self.delayed_returns += 1;
                }
                Method::BasicDeliver(d) => {
                    if let Some(i) = TAGS.iter().position(|t| *t == d.consumer_tag.as_str()) {
                        self.by_tag[i] += 1;
                    }
                }
                _ => {}
            }
            let Some(h) = properties.headers.as_ref() else {
                continue;
            };
            if h.get("x-delay")
                .and_then(FieldValue::as_i64)
                .is_some_and(|d| d < -5)
            {
                self.delayed_fired += 1;
            }
            if h.get("x-delivery-count")
                .and_then(FieldValue::as_i64)
                .is_some_and(|n| n >= 1)
            {
                self.counted += 1;
            }
            let reason = h.get("x-first-death-reason").and_then(|v| v.as_str());
            if let Some(i) = REASONS.iter().position(|r| Some(*r) == reason) {
                self.dead[i] += 1;
            }
        }
    }

    /// Panics unless every feature of the traffic showed up in the output.
    pub(super) fn assert_covered(&self) {
        let ok = self.mandatory_delayed > 20
            && self.delayed_returns > 10
            && self.delayed_fired > 20
            && self.counted > 10
            && self.dead.iter().all(|n| *n > 0)
            && self.by_tag.iter().all(|n| *n > 10)
            && self.nacks_requeue > 50
            && self.rejects > 20
            && self.sac_handovers > 20;
        assert!(ok, "the traffic did not cover every feature: {self:?}");
    }
}
