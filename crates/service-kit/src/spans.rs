//! The kit's OpenTelemetry spans, named and attributed by the OpenTelemetry messaging semantic
//! conventions for RabbitMQ (semantic-conventions `docs/messaging/rabbitmq.md`, development status):
//!
//! | span | kind | name | parent |
//! |---|---|---|---|
//! | [`Publisher::publish`](crate::Publisher::publish) | `PRODUCER` | `publish {destination}` | the caller's current context (or [`Message::with_parent`]) |
//! | consumer handler | `CONSUMER` | `process {destination}` | the message's creation context, also linked |
//! | [`RpcClient::call`](crate::RpcClient::call) | `CLIENT` | `call {destination}` | the caller's current context |
//! | RPC server handler | `SERVER` | `process {destination}` | the request's context (the client span), also linked |
//!
//! The producer span is the message's *creation context*: it is injected into the headers
//! ([`crate::trace`]). **Process spans are children of the creation context and link to it.** The
//! conventions make the link the required correlation (it is the only one that works for batches
//! or inside another ambient span) and allow the creation context as parent "exclusively for
//! single-message scenarios", asking instrumentations to document it. The kit's handlers get one
//! message each and run in a task of their own, with no ambient span, so the parent costs nothing
//! the link would keep and gives one trace, producer → consumer → the handler's own spans, in any
//! exporter (also those that ignore links). A retried message keeps the headers of the original
//! (the kit's retry and dead-letter copies create no producer span), so every attempt's process
//! span has the same parent and link, and `service_kit.attempt` (1, 2, ...) tells them apart.
//!
//! Spans go to the global tracer provider (`opentelemetry::global`), read at each span: an
//! application that installs none pays the no-op tracer (which still passes an incoming context
//! through to outgoing headers). `tracing`: each delivery's handler also runs in a `tracing`
//! span `process` (fields `queue`, `message_id`, `attempt`, `trace_id`) for log correlation.

use std::borrow::Cow;
use std::sync::LazyLock;

use lapin::uri::AMQPUri;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt, TracerProvider};
use opentelemetry::{global, Context, InstrumentationScope, KeyValue};

use crate::consumer::Outcome;
use crate::error::KitError;
use crate::message::{Delivery, Message, TracePropagation};
use crate::rpc::REPLY_TO;

/// `messaging.system`.
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `messaging.operation.type` (`send`, `process`).
pub const OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.operation.name` (`publish`, `process`, `call`).
pub const OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.destination.name`.
pub const DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.destination.temporary` (direct reply-to).
pub const DESTINATION_TEMPORARY: &str = "messaging.destination.temporary";
/// `messaging.destination.anonymous` (direct reply-to).
pub const DESTINATION_ANONYMOUS: &str = "messaging.destination.anonymous";
/// `messaging.rabbitmq.destination.routing_key` (when not empty).
pub const ROUTING_KEY: &str = "messaging.rabbitmq.destination.routing_key";
/// `messaging.rabbitmq.message.delivery_tag`.
pub const DELIVERY_TAG: &str = "messaging.rabbitmq.message.delivery_tag";
/// `messaging.message.id`.
pub const MESSAGE_ID: &str = "messaging.message.id";
/// `messaging.message.conversation_id`: the correlation id.
pub const CONVERSATION_ID: &str = "messaging.message.conversation_id";
/// `server.address`.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`.
pub const SERVER_PORT: &str = "server.port";
/// `error.type`: [`KitError::kind`] on publish / call spans; `retry`, `dead_letter`, `poison`
/// on process spans.
pub const ERROR_TYPE: &str = "error.type";
/// The kit's attempt number on process spans (1 = first delivery, +1 per broker retry).
pub const ATTEMPT: &str = "service_kit.attempt";
/// The handler's outcome on process spans: `ack`, `retry`, `dead_letter`, `poison`, `requeue`,
/// `aborted` (drain deadline).
pub const OUTCOME: &str = "service_kit.outcome";

/// The kit's instrumentation scope.
static SCOPE: LazyLock<InstrumentationScope> = LazyLock::new(|| {
    InstrumentationScope::builder("service-kit")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
});

/// The broker a connection talks to (`server.address` / `server.port`), from the kit's URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    /// Host name or address as written in the URL (no DNS lookup); the embedded broker's name.
    address: String,
    /// Port (the scheme's default when the URL has none); none for an embedded broker.
    port: Option<u16>,
}

impl Peer {
    /// From an `amqp://`, `amqps://` or `warren-embedded://` URL.
    pub(crate) fn from_url(url: &str) -> Peer {
        if let Some(rest) = url.strip_prefix("warren-embedded://") {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let name = rest.split(['/', '?']).next().unwrap_or_default();
            return Peer {
                address: name.to_owned(),
                port: None,
            };
        }
        match url.parse::<AMQPUri>() {
            Ok(u) => Peer {
                address: u.authority.host,
                port: Some(u.authority.port),
            },
            Err(_) => Peer::default(),
        }
    }

    fn push(&self, attrs: &mut Vec<KeyValue>) {
        if !self.address.is_empty() {
            attrs.push(KeyValue::new(SERVER_ADDRESS, self.address.clone()));
        }
        if let Some(p) = self.port {
            attrs.push(KeyValue::new(SERVER_PORT, i64::from(p)));
        }
    }
}

/// Producer-side `messaging.destination.name`: `{exchange}:{routing key}`, whichever is not
/// empty, or `amq.default`.
pub fn publish_destination(exchange: &str, routing_key: &str) -> String {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, false) => format!("{exchange}:{routing_key}"),
        (false, true) => exchange.to_owned(),
        (true, false) => routing_key.to_owned(),
        (true, true) => "amq.default".to_owned(),
    }
}

/// Consumer-side `messaging.destination.name`: `{exchange}:{routing key}:{queue}` without the
/// empty parts, the routing key only once when it equals the queue.
pub fn process_destination(exchange: &str, routing_key: &str, queue: &str) -> String {
    let key = if routing_key == queue {
        ""
    } else {
        routing_key
    };
    let parts: Vec<&str> = [exchange, key, queue]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        "amq.default".to_owned()
    } else {
        parts.join(":")
    }
}

fn is_reply_to(exchange: &str, routing_key: &str) -> bool {
    exchange.is_empty() && routing_key.starts_with(REPLY_TO)
}

fn start(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attrs: Vec<KeyValue>,
    links: Vec<Link>,
    parent: &Context,
) -> Context {
    let tracer = global::tracer_provider().tracer_with_scope(SCOPE.clone());
    let span = SpanBuilder::from_name(name)
        .with_kind(kind)
        .with_attributes(attrs)
        .with_links(links)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

fn common(operation_type: &'static str, operation_name: &'static str) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(12);
    a.push(KeyValue::new(MESSAGING_SYSTEM, "rabbitmq"));
    a.push(KeyValue::new(OPERATION_TYPE, operation_type));
    a.push(KeyValue::new(OPERATION_NAME, operation_name));
    a
}

/// Destination, routing key, temporary/anonymous flags; returns the span name's destination.
fn destination_attrs(attrs: &mut Vec<KeyValue>, exchange: &str, routing_key: &str) -> String {
    let dest = publish_destination(exchange, routing_key);
    if !routing_key.is_empty() {
        attrs.push(KeyValue::new(ROUTING_KEY, routing_key.to_owned()));
    }
    let name = if is_reply_to(exchange, routing_key) {
        // Direct reply-to: a per-channel, unnamed destination; the span name omits it.
        attrs.push(KeyValue::new(DESTINATION_TEMPORARY, true));
        attrs.push(KeyValue::new(DESTINATION_ANONYMOUS, true));
        String::new()
    } else {
        dest.clone()
    };
    attrs.push(KeyValue::new(DESTINATION_NAME, dest));
    name
}

fn span_name(operation: &str, destination: &str) -> String {
    if destination.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {destination}")
    }
}

/// Starts the `PRODUCER` span of `msg` (id already set) and injects it into the headers; `None`
/// for the kit's own retry / dead-letter copies, which keep their creation context.
pub(crate) fn start_publish(msg: &mut Message, peer: &Peer) -> Option<Context> {
    let parent = match &msg.trace {
        TracePropagation::Keep => return None,
        TracePropagation::Current => Context::current(),
        TracePropagation::Parent(cx) => cx.clone(),
    };
    let mut attrs = common("send", "publish");
    let dest = destination_attrs(&mut attrs, &msg.exchange, &msg.routing_key);
    if let Some(id) = msg.properties.message_id() {
        attrs.push(KeyValue::new(MESSAGE_ID, id.to_string()));
    }
    if let Some(c) = msg.properties.correlation_id() {
        attrs.push(KeyValue::new(CONVERSATION_ID, c.to_string()));
    }
    peer.push(&mut attrs);
    let cx = start(
        span_name("publish", &dest),
        SpanKind::Producer,
        attrs,
        vec![],
        &parent,
    );
    inject_into(&cx, &mut msg.properties);
    Some(cx)
}

/// Injects `cx` into `props`' headers (left alone when there is nothing to propagate).
pub(crate) fn inject_into(cx: &Context, props: &mut lapin::BasicProperties) {
    if !cx.span().span_context().is_valid() && cx.baggage().is_empty() {
        return;
    }
    let mut h = props.headers().clone().unwrap_or_default();
    crate::trace::inject(cx, &mut h);
    *props = props.clone().with_headers(h);
}

/// Starts the `CLIENT` span of an RPC call (its context goes into the request's headers).
pub(crate) fn start_call(exchange: &str, routing_key: &str, id: &str, peer: &Peer) -> Context {
    let mut attrs = common("send", "call");
    let dest = destination_attrs(&mut attrs, exchange, routing_key);
    attrs.push(KeyValue::new(MESSAGE_ID, id.to_owned()));
    attrs.push(KeyValue::new(CONVERSATION_ID, id.to_owned()));
    peer.push(&mut attrs);
    start(
        span_name("call", &dest),
        SpanKind::Client,
        attrs,
        vec![],
        &Context::current(),
    )
}

/// Starts the process span of one delivery from `queue`: `CONSUMER` (or `SERVER` for the RPC
/// server), child of the message's creation context and linked to it.
pub(crate) fn start_process(d: &Delivery, queue: &str, kind: SpanKind, peer: &Peer) -> Context {
    let creation = d.creation_context();
    let sc = creation.span().span_context().clone();
    let links = if sc.is_valid() {
        vec![Link::with_context(sc)]
    } else {
        vec![]
    };
    let dest = process_destination(&d.exchange, &d.routing_key, queue);
    let mut attrs = common("process", "process");
    attrs.push(KeyValue::new(DESTINATION_NAME, dest.clone()));
    if !d.routing_key.is_empty() {
        attrs.push(KeyValue::new(ROUTING_KEY, d.routing_key.clone()));
    }
    attrs.push(KeyValue::new(
        DELIVERY_TAG,
        i64::try_from(d.delivery_tag).unwrap_or(i64::MAX),
    ));
    if let Some(id) = d.message_id() {
        attrs.push(KeyValue::new(MESSAGE_ID, id.to_owned()));
    }
    if let Some(c) = d.properties.correlation_id() {
        attrs.push(KeyValue::new(CONVERSATION_ID, c.to_string()));
    }
    attrs.push(KeyValue::new(ATTEMPT, i64::from(d.attempt)));
    peer.push(&mut attrs);
    start(span_name("process", &dest), kind, attrs, links, &creation)
}

/// Ends a publish or call span with its result.
pub(crate) fn end_with<T>(cx: &Context, result: &Result<T, KitError>) {
    let span = cx.span();
    if let Err(e) = result {
        span.set_attribute(KeyValue::new(ERROR_TYPE, e.kind()));
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}

/// Ends a process span with the handler's outcome (`None`: aborted at the drain deadline);
/// `dead` = a retry that went to the dead-letter queue (last attempt).
pub(crate) fn end_process(cx: &Context, outcome: Option<&Outcome>, dead: bool) {
    let span = cx.span();
    let (label, error) = match outcome {
        None => ("aborted", None),
        Some(Outcome::Ack) => ("ack", None),
        Some(Outcome::Requeue) => ("requeue", None),
        Some(Outcome::Retry(e)) if dead => ("dead_letter", Some(e)),
        Some(Outcome::Retry(e)) => ("retry", Some(e)),
        Some(Outcome::Poison(e)) => ("poison", Some(e)),
    };
    span.set_attribute(KeyValue::new(OUTCOME, label));
    if let Some(e) = error {
        span.set_attribute(KeyValue::new(ERROR_TYPE, label));
        span.set_status(Status::error(e.clone()));
    }
    span.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_names_follow_the_conventions() {
        assert_eq!(publish_destination("shop", "orders"), "shop:orders");
        assert_eq!(publish_destination("", "q"), "q");
        assert_eq!(publish_destination("logs", ""), "logs");
        assert_eq!(publish_destination("", ""), "amq.default");
        assert_eq!(process_destination("", "q", "q"), "q");
        assert_eq!(process_destination("shop", "orders", "q"), "shop:orders:q");
        assert_eq!(process_destination("shop", "q", "q"), "shop:q");
        assert_eq!(process_destination("logs", "", "q"), "logs:q");
    }

    #[test]
    fn peer_comes_from_the_url_without_credentials() {
        let p = Peer::from_url("amqp://guest:guest@127.0.0.1:5699/%2f");
        assert_eq!((p.address.as_str(), p.port), ("127.0.0.1", Some(5699)));
        let p = Peer::from_url("amqps://u:p@broker.example");
        assert_eq!((p.address.as_str(), p.port), ("broker.example", Some(5671)));
        let p = Peer::from_url("warren-embedded://u:p@app/%2f");
        assert_eq!((p.address.as_str(), p.port), ("app", None));
    }
}
