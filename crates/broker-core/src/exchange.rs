//! Exchanges, their bindings, and routing a message to destinations.

use amqp_codec::{FieldTable, ShortStr};

use crate::headers::{headers_match, x_match, XMatch};

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

impl Binding {
    /// Same destination, routing key and (equivalent) arguments.
    pub(crate) fn is(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.destination == *destination
            && self.routing_key.as_str() == routing_key
            && self.arguments.equivalent(arguments)
    }
}

#[derive(Debug)]
pub struct Exchange {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The bindings, indexed by destination (and by routing key for direct
    /// exchanges). Changed only through `bind`/`unbind`/`unbind_all_to`,
    /// called by `Vhost`, which keeps the reverse index.
    pub bindings: crate::bindings::BindingSet,
    /// Declared as `x-delayed-message` (`kind` is its `x-delayed-type`):
    /// messages with an `x-delay` wait in the vhost's `delayed` store.
    pub delayed: bool,
    /// Message deduplication (`x-message-deduplication`), if enabled.
    pub dedup: Option<Box<crate::dedup::Dedup>>,
    /// Message counts for the management API (`stats.rs`).
    pub stats: crate::stats::ExchangeStats,
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
            stats: Default::default(),
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: crate::bindings::BindingSet::new(match kind {
                ExchangeKind::Direct => crate::bindings::KeyIndex::Exact,
                ExchangeKind::Topic => crate::bindings::KeyIndex::Pattern,
                _ => crate::bindings::KeyIndex::None,
            }),
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
        Ok(self.bindings.insert(Binding {
            destination,
            routing_key,
            arguments,
            x_match,
        }))
    }

    /// Removes a binding; returns false if there was none.
    pub fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.bindings.remove(destination, routing_key, arguments)
    }

    /// True if this exact binding exists.
    pub fn has_binding(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.bindings.contains(destination, routing_key, arguments)
    }

    /// Removes every binding to `destination`; returns how many went.
    pub fn unbind_all_to(&mut self, destination: &Destination) -> usize {
        self.bindings.remove_destination(destination)
    }

    /// Calls `f` with each destination a message matches.
    pub fn for_each_destination<'a>(
        &'a self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        mut f: impl FnMut(&'a Destination),
    ) {
        match self.kind {
            ExchangeKind::Direct => self.bindings.with_key(routing_key).for_each(f),
            ExchangeKind::Fanout => self.bindings.iter().for_each(|b| f(&b.destination)),
            ExchangeKind::Topic => self.bindings.for_each_pattern_match(routing_key, &mut f),
            ExchangeKind::Headers => self
                .bindings
                .iter()
                .filter(|b| headers_match(b.x_match, &b.arguments, headers))
                .for_each(|b| f(&b.destination)),
        }
    }
}
