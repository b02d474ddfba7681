//! Routing a message through a vhost's exchanges to the queues it reaches:
//! exchange-to-exchange bindings, alternate exchanges, each queue once.
//!
//! Cost: O(matching bindings) per exchange visited (one hash lookup for a
//! direct exchange; a scan for fanout, topic and headers), no allocation for
//! the common shapes (up to `DEDUP_LINEAR_MAX` target queues and no
//! exchange-to-exchange bindings); duplicate queues are found with a linear
//! check up to that size and a hash set beyond it, so a fanout to 10,000
//! queues is linear, not quadratic.

use amqp_codec::{FieldTable, Name, ShortStr};
use rustc_hash::FxHashSet;

use crate::delayed::delay_of;
use crate::exchange::{Destination, ExchangeKind};
use crate::vhost::Vhost;

/// Exchanges one message may pass through (bounds e2e cycles and fan-in).
const ROUTE_EXCHANGES_MAX: usize = 64;
/// Up to this many target queues, duplicates are checked by a linear scan.
const DEDUP_LINEAR_MAX: usize = 16;

/// State of one routing walk.
struct Walk<'a, 'h> {
    /// Delayed exchanges that keep the message, with the delay in ms.
    delays: &'h mut Vec<(ShortStr, u64)>,
    /// The exchange published to deduplicates.
    dedup: bool,
    /// Computes the message's headers (only if a headers exchange is met).
    headers: &'h mut dyn FnMut() -> Option<FieldTable>,
    /// The headers, once computed.
    cached: Option<Option<FieldTable>>,
    /// Exchanges visited so far (cycle cut and bound).
    visited: [&'a str; ROUTE_EXCHANGES_MAX],
    visited_len: usize,
    /// Target queues already in `out`, once `out` outgrows the linear scan.
    seen: Option<FxHashSet<ShortStr>>,
}

impl Vhost {
    /// Queues a message published to `exchange` reaches, without
    /// duplicates; `headers` is computed only if an exchange needs them
    /// (headers, delayed, deduplicating). Each delayed exchange reached that
    /// keeps the message is listed in `delays` with its delay in ms (it
    /// counts as routing nowhere now, and is routed again from there once
    /// due). Returns whether `exchange` deduplicates (the caller then
    /// checks; `headers` was called).
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
        let mut walk = Walk {
            delays,
            dedup: false,
            headers,
            cached: None,
            visited: [""; ROUTE_EXCHANGES_MAX],
            visited_len: 0,
            seen: None,
        };
        self.route_from(exchange, routing_key, &mut walk, out);
        walk.dedup
    }

    fn route_from<'a>(
        &'a self,
        exchange: &'a str,
        routing_key: &str,
        walk: &mut Walk<'a, '_>,
        out: &mut Vec<ShortStr>,
    ) {
        let visited = &walk.visited[..walk.visited_len];
        if walk.visited_len >= ROUTE_EXCHANGES_MAX || visited.contains(&exchange) {
            return;
        }
        walk.visited[walk.visited_len] = exchange;
        walk.visited_len += 1;
        let Some((ex_name, ex)) = self.exchanges.get_key_value(Name::new(exchange)) else {
            return;
        };
        if walk.visited_len == 1 && ex.dedup.is_some() {
            walk.dedup = true;
        }
        let wants_headers = ex.kind == ExchangeKind::Headers || ex.delayed || walk.dedup;
        if wants_headers && walk.cached.is_none() {
            walk.cached = Some((walk.headers)());
        }
        let before = out.len();
        let headers = walk.cached.as_ref().and_then(|h| h.as_ref());
        let delay = if ex.delayed { delay_of(headers) } else { None };
        if let Some(d) = delay {
            // Kept by the exchange: routed nowhere now (as in the plugin,
            // the alternate exchange below still gets it).
            walk.delays.push((ex_name.clone(), d));
        } else {
            // Exchange destinations are followed after this exchange's
            // queues (rare: only e2e bindings allocate).
            let mut next: Vec<&'a ShortStr> = Vec::new();
            ex.for_each_destination(routing_key, headers, |d| match d {
                Destination::Queue(q) => {
                    if self.queues.contains_key(q) {
                        push_once(q, out, &mut walk.seen);
                    }
                }
                Destination::Exchange(e) => next.push(e),
            });
            for e in next {
                self.route_from(e.as_str(), routing_key, walk, out);
            }
        }
        if out.len() == before {
            if let Some(ae) = ex.alternate_exchange() {
                self.route_from(ae, routing_key, walk, out);
            }
        }
    }
}

/// Appends `q` unless it is already a target.
fn push_once(q: &ShortStr, out: &mut Vec<ShortStr>, seen: &mut Option<FxHashSet<ShortStr>>) {
    match seen {
        Some(set) => {
            if set.insert(q.clone()) {
                out.push(q.clone());
            }
        }
        None => {
            if out.contains(q) {
                return;
            }
            out.push(q.clone());
            if out.len() > DEDUP_LINEAR_MAX {
                *seen = Some(out.iter().cloned().collect());
            }
        }
    }
}
