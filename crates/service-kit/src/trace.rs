//! W3C trace context in message headers (`traceparent`, `tracestate`, `baggage` as long strings)
//! and `tracing` spans named and attributed by the OpenTelemetry messaging conventions for
//! RabbitMQ (`publish {destination}`, `process {destination}`). A `tracing-opentelemetry` layer in
//! the application exports them; the kit itself depends on no OpenTelemetry SDK.

use lapin::types::{AMQPValue, FieldTable};

use crate::message::{header_str, Delivery, Message};

/// Header keys of the W3C propagators.
pub const TRACEPARENT: &str = "traceparent";
/// W3C tracestate header.
pub const TRACESTATE: &str = "tracestate";
/// W3C baggage header.
pub const BAGGAGE: &str = "baggage";

/// A W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id, lowercase hex (32 chars).
    pub trace_id: String,
    /// 8-byte parent span id, lowercase hex (16 chars).
    pub span_id: String,
    /// Trace flags (bit 0 = sampled).
    pub flags: u8,
    /// `tracestate`, passed through.
    pub tracestate: Option<String>,
    /// `baggage`, passed through.
    pub baggage: Option<String>,
}

fn hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", fastrand::u8(..16)))
        .collect()
}

fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && s.bytes().any(|b| b != b'0')
}

impl TraceContext {
    /// A new sampled root context.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: hex(32),
            span_id: hex(16),
            flags: 1,
            tracestate: None,
            baggage: None,
        }
    }

    /// A child: same trace, new span id.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: hex(16),
            ..self.clone()
        }
    }

    /// The `traceparent` value: `00-<trace>-<span>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }

    /// Parses a `traceparent` value (version 00; all-zero ids are invalid).
    pub fn parse(traceparent: &str) -> Option<TraceContext> {
        let mut parts = traceparent.trim().split('-');
        let (v, t, s, f) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if v != "00" || !is_hex(t, 32) || !is_hex(s, 16) || f.len() != 2 {
            return None;
        }
        Some(TraceContext {
            trace_id: t.into(),
            span_id: s.into(),
            flags: u8::from_str_radix(f, 16).ok()?,
            tracestate: None,
            baggage: None,
        })
    }

    /// Writes the context into `headers` (long strings).
    pub fn inject(&self, headers: &mut FieldTable) {
        headers.insert(
            TRACEPARENT.into(),
            AMQPValue::LongString(self.traceparent().into()),
        );
        if let Some(ts) = &self.tracestate {
            headers.insert(TRACESTATE.into(), AMQPValue::LongString(ts.as_str().into()));
        }
        if let Some(b) = &self.baggage {
            headers.insert(BAGGAGE.into(), AMQPValue::LongString(b.as_str().into()));
        }
    }

    /// Reads a context from `headers` (tolerates short strings and byte arrays).
    pub fn extract(headers: &FieldTable) -> Option<TraceContext> {
        let mut c = TraceContext::parse(&header_str(headers, TRACEPARENT)?)?;
        c.tracestate = header_str(headers, TRACESTATE);
        c.baggage = header_str(headers, BAGGAGE);
        Some(c)
    }
}

impl Message {
    /// Carries `ctx` (as a child span of it: the producer's send span) in the headers.
    pub fn with_trace(mut self, ctx: &TraceContext) -> Message {
        let mut h = self.properties.headers().clone().unwrap_or_default();
        ctx.child().inject(&mut h);
        self.properties = self.properties.with_headers(h);
        self
    }
}

impl Delivery {
    /// The producer's context carried by the message, if any.
    pub fn trace_context(&self) -> Option<TraceContext> {
        TraceContext::extract(self.properties.headers().as_ref()?)
    }
}

/// The conventions' destination name: `exchange:routing_key`, whichever exists, or `amq.default`.
pub fn destination(exchange: &str, routing_key: &str) -> String {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, false) => format!("{exchange}:{routing_key}"),
        (false, true) => exchange.to_owned(),
        (true, false) => routing_key.to_owned(),
        (true, true) => "amq.default".to_owned(),
    }
}

/// The CONSUMER span of one delivery, linked to the producer context (`messaging.link.traceparent`)
/// and carrying the attempt number.
pub fn process_span(d: &Delivery, queue: &str) -> tracing::Span {
    let link = d
        .trace_context()
        .map(|c| c.traceparent())
        .unwrap_or_default();
    tracing::info_span!(
        "process",
        otel.name = %format!("process {queue}"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.name = "process",
        messaging.operation.type = "process",
        messaging.destination.name = %destination(&d.exchange, &d.routing_key),
        messaging.rabbitmq.destination.routing_key = %d.routing_key,
        messaging.rabbitmq.message.delivery_tag = d.delivery_tag,
        messaging.message.id = %d.message_id().unwrap_or_default(),
        messaging.link.traceparent = %link,
        service_kit.attempt = d.attempt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let c = TraceContext::new_root();
        let p = TraceContext::parse(&c.traceparent()).unwrap();
        assert_eq!(p.trace_id, c.trace_id);
        assert_eq!(p.span_id, c.span_id);
        assert!(TraceContext::parse("00-0000-00-01").is_none());
        assert!(
            TraceContext::parse(&format!("00-{}-{}-01", "0".repeat(32), "1".repeat(16))).is_none()
        );
    }

    #[test]
    fn destination_names_follow_the_conventions() {
        assert_eq!(destination("shop", "orders"), "shop:orders");
        assert_eq!(destination("", "q"), "q");
        assert_eq!(destination("", ""), "amq.default");
    }
}
