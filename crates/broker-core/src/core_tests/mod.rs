//! In-process tests of the core (see `testkit`): routing, dispatch,
//! prefetch, settlement, tx, confirms, TTL, dead-lettering, length limits
//! and the publish fast path against the general path. No sockets, no sleeps.

mod access;
mod cancel;
mod consumers;
mod dedup;
mod delayed;
mod delivery;
mod dlx_pause;
mod edge;
mod entry_guard;
mod fast_path;
mod fast_path_traffic;
mod global;
mod mgmt;
mod priority;
mod quorum;
mod routing;
mod settle;
mod stored;
mod ttl_dlx;

use amqp_codec::{FieldTable, FieldValue, Method, ShortStr};
use bytes::Bytes;

use crate::testkit::{Client, Core, Out};

pub(crate) fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert(ShortStr::from(*k), v.clone());
    }
    t
}

pub(crate) fn long_str(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

/// A core with one client that has channel 1 open.
pub(crate) fn setup() -> (Core, Client) {
    let mut core = Core::default();
    let mut c = core.connect();
    core.open_channel(&mut c, 1);
    (core, c)
}

pub(crate) fn declare_exchange(core: &mut Core, c: &mut Client, name: &str, kind: &str) {
    let got = core.call(
        c,
        1,
        Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
            exchange: ShortStr::from(name),
            kind: ShortStr::from(kind),
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

pub(crate) fn bind(
    core: &mut Core,
    c: &mut Client,
    q: &str,
    ex: &str,
    key: &str,
    args: FieldTable,
) {
    let got = core.call(
        c,
        1,
        Method::QueueBind(amqp_codec::QueueBind {
            queue: ShortStr::from(q),
            exchange: ShortStr::from(ex),
            routing_key: ShortStr::from(key),
            arguments: args,
            ..Default::default()
        }),
    );
    assert!(
        matches!(got.as_slice(), [Out::Method(1, Method::QueueBindOk(_))]),
        "{got:?}"
    );
}

/// basic.get on channel 1: the body, or None for get-empty.
pub(crate) fn get(core: &mut Core, c: &mut Client, q: &str, no_ack: bool) -> Option<Out> {
    let got = core.call(
        c,
        1,
        Method::BasicGet(amqp_codec::BasicGet {
            queue: ShortStr::from(q),
            no_ack,
            ..Default::default()
        }),
    );
    match got.as_slice() {
        [Out::Method(1, Method::BasicGetEmpty(_))] => None,
        [o @ Out::Content { .. }] => Some(o.clone()),
        other => panic!("basic.get {q}: {other:?}"),
    }
}

/// Drains `q` with basic.get (auto-ack), returning the bodies in order.
pub(crate) fn drain(core: &mut Core, c: &mut Client, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(o) = get(core, c, q, true) {
        out.push(String::from_utf8_lossy(o.body()).into_owned());
        assert!(out.len() <= 100_000, "queue {q} does not drain");
    }
    out
}

pub(crate) fn delivery_tag(o: &Out) -> u64 {
    match o.method() {
        Method::BasicDeliver(d) => d.delivery_tag,
        Method::BasicGetOk(g) => g.delivery_tag,
        m => panic!("not a delivery: {m:?}"),
    }
}

pub(crate) fn redelivered(o: &Out) -> bool {
    match o.method() {
        Method::BasicDeliver(d) => d.redelivered,
        Method::BasicGetOk(g) => g.redelivered,
        m => panic!("not a delivery: {m:?}"),
    }
}

/// The channel.close the core sent, as (code, text).
pub(crate) fn channel_close(outs: &[Out]) -> Option<(u16, String)> {
    outs.iter().find_map(|o| match o {
        Out::Method(_, Method::ChannelClose(c)) => Some((c.reply_code, c.reply_text.to_string())),
        _ => None,
    })
}
