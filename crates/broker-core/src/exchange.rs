//! Exchanges, their bindings, and routing a message to destinations.

use amqp_codec::{FieldTable, ShortStr};
use rustc_hash::FxHashMap;

use crate::headers::{headers_match, x_match, XMatch};
use crate::topic::topic_matches;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        match s {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Queue(ShortStr),
    Exchange(ShortStr),
}

impl Destination {
    pub fn name(&self) -> &ShortStr {
        match self {
            Destination::Queue(n) | Destination::Exchange(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
    /// Parsed `x-match` for headers exchanges.
    pub x_match: XMatch,
}

#[derive(Debug)]
pub struct Exchange {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// All bindings in creation order (the source of truth).
    pub bindings: Vec<Binding>,
    /// Direct exchanges: routing key -> indexes into `bindings`; rebuilt on change.
    direct_index: FxHashMap<ShortStr, Vec<usize>>,
    /// Declared as `x-delayed-message` (`kind` is its `x-delayed-type`):
    /// messages with an `x-delay` wait in the vhost's `delayed` store.
    pub delayed: bool,
    /// Message deduplication (`x-message-deduplication`), if enabled.
    pub dedup: Option<Box<crate::dedup::Dedup>>,
}

impl Exchange {
    pub fn new(
        name: ShortStr,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Exchange {
        Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: Vec::new(),
            direct_index: FxHashMap::default(),
            delayed: false,
            dedup: None,
        }
    }

    /// The type name clients declared (`x-delayed-message` or the kind).
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            crate::delayed::DELAYED_TYPE
        } else {
            self.kind.as_str()
        }
    }

    /// Name of the alternate exchange, if the `alternate-exchange` argument is set.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str())
    }

    /// Adds a binding; returns false if an identical one already exists.
    pub fn bind(
        &mut self,
        destination: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<bool, String> {
        let x_match = if self.kind == ExchangeKind::Headers {
            x_match(&arguments)?
        } else {
            XMatch::All
        };
        if self.bindings.iter().any(|b| {
            b.destination == destination
                && b.routing_key == routing_key
                && b.arguments.equivalent(&arguments)
        }) {
            return Ok(false);
        }
        self.bindings.push(Binding {
            destination,
            routing_key,
            arguments,
            x_match,
        });
        self.reindex();
        Ok(true)
    }

    /// Removes a binding; returns false if there was none.
    pub fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let before = self.bindings.len();
        self.bindings.retain(|b| {
            !(b.destination == *destination
                && b.routing_key.as_str() == routing_key
                && b.arguments.equivalent(arguments))
        });
        let removed = self.bindings.len() != before;
        if removed {
            self.reindex();
        }
        removed
    }

    /// Removes every binding to `destination`; returns how many went.
    pub fn unbind_all_to(&mut self, destination: &Destination) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(|b| b.destination != *destination);
        let removed = before - self.bindings.len();
        if removed > 0 {
            self.reindex();
        }
        removed
    }

    fn reindex(&mut self) {
        if self.kind != ExchangeKind::Direct {
            return;
        }
        self.direct_index.clear();
        for (i, b) in self.bindings.iter().enumerate() {
            self.direct_index
                .entry(b.routing_key.clone())
                .or_default()
                .push(i);
        }
    }

    /// Appends the destinations matching a message to `out`.
    pub fn route<'a>(
        &'a self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<&'a Destination>,
    ) {
        match self.kind {
            ExchangeKind::Direct => {
                if let Some(idx) = self.direct_index.get(routing_key) {
                    out.extend(idx.iter().map(|&i| &self.bindings[i].destination));
                }
            }
            ExchangeKind::Fanout => out.extend(self.bindings.iter().map(|b| &b.destination)),
            ExchangeKind::Topic => out.extend(
                self.bindings
                    .iter()
                    .filter(|b| topic_matches(&b.routing_key, routing_key))
                    .map(|b| &b.destination),
            ),
            ExchangeKind::Headers => out.extend(
                self.bindings
                    .iter()
                    .filter(|b| headers_match(b.x_match, &b.arguments, headers))
                    .map(|b| &b.destination),
            ),
        }
    }
}
