//! The exchanges, queues and bindings a service needs, declared on every (re)connect.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// One exchange to declare.
#[derive(Debug, Clone)]
pub struct ExchangeDef {
    /// Exchange name.
    pub name: String,
    /// Exchange type (`direct`, `fanout`, `topic`, `headers`, `x-delayed-message`, ...).
    pub kind: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Declare arguments.
    pub arguments: FieldTable,
}

/// One queue to declare.
#[derive(Debug, Clone)]
pub struct QueueDef {
    /// Queue name.
    pub name: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declare arguments (`x-queue-type`, `x-dead-letter-exchange`, ...).
    pub arguments: FieldTable,
}

/// One binding to declare.
#[derive(Debug, Clone)]
pub struct BindingDef {
    /// Destination queue.
    pub queue: String,
    /// Source exchange.
    pub exchange: String,
    /// Binding key.
    pub routing_key: String,
    /// Binding arguments.
    pub arguments: FieldTable,
}

/// A set of declarations, replayed in order (exchanges, queues, bindings) after every connect.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Exchanges.
    pub exchanges: Vec<ExchangeDef>,
    /// Queues.
    pub queues: Vec<QueueDef>,
    /// Bindings.
    pub bindings: Vec<BindingDef>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Topology {
        Topology::default()
    }

    /// Adds a durable exchange of type `kind`.
    pub fn exchange(mut self, name: &str, kind: &str) -> Topology {
        self.exchanges.push(ExchangeDef {
            name: name.into(),
            kind: kind.into(),
            durable: true,
            arguments: FieldTable::default(),
        });
        self
    }

    /// Adds a durable queue.
    pub fn queue(self, name: &str) -> Topology {
        self.queue_with(name, FieldTable::default())
    }

    /// Adds a durable queue with arguments.
    pub fn queue_with(mut self, name: &str, arguments: FieldTable) -> Topology {
        self.queues.push(QueueDef {
            name: name.into(),
            durable: true,
            auto_delete: false,
            arguments,
        });
        self
    }

    /// Adds a binding.
    pub fn bind(mut self, queue: &str, exchange: &str, routing_key: &str) -> Topology {
        self.bindings.push(BindingDef {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            arguments: FieldTable::default(),
        });
        self
    }

    /// Appends another topology.
    pub fn merge(&mut self, other: &Topology) {
        self.exchanges.extend(other.exchanges.iter().cloned());
        self.queues.extend(other.queues.iter().cloned());
        self.bindings.extend(other.bindings.iter().cloned());
    }

    /// Declares everything on `ch`.
    pub async fn declare(&self, ch: &Channel) -> lapin::Result<()> {
        for e in &self.exchanges {
            let opts = ExchangeDeclareOptions {
                durable: e.durable,
                ..Default::default()
            };
            ch.exchange_declare(&e.name, kind(&e.kind), opts, e.arguments.clone())
                .await?;
        }
        for q in &self.queues {
            let opts = QueueDeclareOptions {
                durable: q.durable,
                auto_delete: q.auto_delete,
                ..Default::default()
            };
            ch.queue_declare(&q.name, opts, q.arguments.clone()).await?;
        }
        for b in &self.bindings {
            ch.queue_bind(
                &b.queue,
                &b.exchange,
                &b.routing_key,
                QueueBindOptions::default(),
                b.arguments.clone(),
            )
            .await?;
        }
        Ok(())
    }
}

/// lapin's exchange kind for a type name.
pub(crate) fn kind(name: &str) -> ExchangeKind {
    match name {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.into()),
    }
}

/// A field table from (key, long-string) pairs.
pub fn table_str(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}
