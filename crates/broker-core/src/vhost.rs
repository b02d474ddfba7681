//! A virtual host: a namespace of exchanges and queues.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use amqp_codec::{FieldTable, Name, ShortStr};
use rustc_hash::FxHashMap;

use crate::delayed::{delay_of, DelayedStore};
use crate::exchange::{Destination, Exchange, ExchangeKind};
use crate::queue::Queue;

/// Exchanges every vhost has, as in RabbitMQ.
const PREDECLARED: [(&str, ExchangeKind); 6] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
    ("amq.rabbitmq.trace", ExchangeKind::Topic),
];

/// Upper bound on exchange-to-exchange hops while routing one message, so a
/// binding cycle cannot loop (cycles are also cut by a visited set).
const ROUTE_EXCHANGES_MAX: usize = 64;

/// A vhost's name as the broker's vhost table keys it: shared (connections
/// name their vhost without allocating) and looked up as a [`Name`], so
/// the hot path compares names inline.
#[derive(Debug, Clone)]
pub struct VhostKey(pub Arc<str>);

impl Hash for VhostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for VhostKey {
    fn eq(&self, other: &Self) -> bool {
        amqp_codec::bytes_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for VhostKey {}

impl Borrow<str> for VhostKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Borrow<Name> for VhostKey {
    fn borrow(&self) -> &Name {
        Name::new(&self.0)
    }
}

impl From<&str> for VhostKey {
    fn from(s: &str) -> Self {
        VhostKey(s.into())
    }
}

impl std::ops::Deref for VhostKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
pub struct Vhost {
    pub exchanges: FxHashMap<ShortStr, Exchange>,
    pub queues: FxHashMap<ShortStr, Queue>,
    /// Pending messages of each `x-delayed-message` exchange, by exchange name.
    pub delayed: FxHashMap<ShortStr, DelayedStore>,
}

impl Vhost {
    pub fn new() -> Vhost {
        let mut exchanges = FxHashMap::default();
        exchanges.insert(
            ShortStr::from(""),
            Exchange::new(
                ShortStr::from(""),
                ExchangeKind::Direct,
                true,
                false,
                false,
                FieldTable::default(),
            ),
        );
        for (n, kind) in PREDECLARED {
            let internal = n == "amq.rabbitmq.trace";
            exchanges.insert(
                ShortStr::from(n),
                Exchange::new(
                    ShortStr::from(n),
                    kind,
                    true,
                    false,
                    internal,
                    FieldTable::default(),
                ),
            );
        }
        Vhost {
            exchanges,
            queues: FxHashMap::default(),
            delayed: FxHashMap::default(),
        }
    }

    /// Queues a message published to `exchange` reaches, without duplicates.
    /// `headers` is computed only if a headers exchange is consulted.
    /// Delayed exchanges on the way count as routing nowhere (see
    /// `route_delayed`).
    #[allow(dead_code)]
    pub fn route<'a>(
        &'a self,
        exchange: &'a str,
        routing_key: &str,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        out: &mut Vec<ShortStr>,
    ) {
        let mut delays = Vec::new();
        self.route_delayed(exchange, routing_key, headers, out, &mut delays);
    }

    /// `route`, also listing in `delays` each delayed exchange reached
    /// that keeps the message, with its delay in ms (the message must then
    /// be routed again from there once due). Returns whether `exchange`
    /// deduplicates (the caller then checks; `headers` was called).
    pub fn route_delayed<'a>(
        &'a self,
        exchange: &'a str,
        routing_key: &str,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        out: &mut Vec<ShortStr>,
        delays: &mut Vec<(ShortStr, u64)>,
    ) -> bool {
        if exchange.is_empty() {
            if let Some((name, _)) = self.queues.get_key_value(Name::new(routing_key)) {
                out.push(name.clone());
            }
            return false;
        }
        let mut cached_headers: Option<Option<FieldTable>> = None;
        let mut visited: Vec<&str> = Vec::new();
        let mut cx = RouteCx {
            headers,
            cached: &mut cached_headers,
            visited: &mut visited,
            delays,
            dedup: false,
        };
        self.route_from(exchange, routing_key, &mut cx, out);
        cx.dedup
    }

    fn route_from<'a>(
        &'a self,
        exchange: &'a str,
        routing_key: &str,
        cx: &mut RouteCx<'_, 'a>,
        out: &mut Vec<ShortStr>,
    ) {
        if cx.visited.len() >= ROUTE_EXCHANGES_MAX || cx.visited.contains(&exchange) {
            return;
        }
        cx.visited.push(exchange);
        let Some((ex_name, ex)) = self.exchanges.get_key_value(Name::new(exchange)) else {
            return;
        };
        if cx.visited.len() == 1 && ex.dedup.is_some() {
            cx.dedup = true;
        }
        let wants_headers = ex.kind == ExchangeKind::Headers || ex.delayed || cx.dedup;
        if wants_headers && cx.cached.is_none() {
            *cx.cached = Some((cx.headers)());
        }
        let before = out.len();
        let delay = if ex.delayed {
            delay_of(cx.cached.as_ref().and_then(|h| h.as_ref()))
        } else {
            None
        };
        if let Some(d) = delay {
            // Kept by the exchange: routed nowhere now (as in the plugin,
            // the alternate exchange below still gets it).
            cx.delays.push((ex_name.clone(), d));
        } else {
            let mut dests = Vec::new();
            ex.route(
                routing_key,
                cx.cached.as_ref().and_then(|h| h.as_ref()),
                &mut dests,
            );
            for d in dests {
                match d {
                    Destination::Queue(q) => {
                        if self.queues.contains_key(q) && !out.contains(q) {
                            out.push(q.clone());
                        }
                    }
                    Destination::Exchange(e) => {
                        self.route_from(e.as_str(), routing_key, cx, out);
                    }
                }
            }
        }
        if out.len() == before {
            if let Some(ae) = ex.alternate_exchange() {
                self.route_from(ae, routing_key, cx, out);
            }
        }
    }
}

/// State of one routing walk.
struct RouteCx<'h, 'a> {
    /// Computes the message's headers (only if an exchange needs them).
    headers: &'h mut dyn FnMut() -> Option<FieldTable>,
    /// The headers once computed.
    cached: &'h mut Option<Option<FieldTable>>,
    /// Exchanges already visited (cycle cut), bounded by ROUTE_EXCHANGES_MAX.
    visited: &'h mut Vec<&'a str>,
    /// Delayed exchanges that keep the message, with the delay in ms.
    delays: &'h mut Vec<(ShortStr, u64)>,
    /// The exchange published to deduplicates.
    dedup: bool,
}
