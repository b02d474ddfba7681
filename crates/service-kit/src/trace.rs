//! Trace context in message headers: the OpenTelemetry W3C TraceContext + Baggage propagators
//! (`traceparent`, `tracestate`, `baggage`) writing AMQP long strings, and reading long strings,
//! short strings or byte arrays (what other clients send). The spans themselves are in
//! [`crate::spans`].
//!
//! [`TraceContext`] is the kit's older plain-data view of the same headers (kept for code that
//! parses a `traceparent` itself, e.g. from an HTTP request, and for reading a delivery's context
//! without an OpenTelemetry SDK).

use std::sync::LazyLock;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::message::{header_str, Delivery, Message, TracePropagation};

/// Header keys of the W3C propagators.
pub const TRACEPARENT: &str = "traceparent";
/// W3C tracestate header.
pub const TRACESTATE: &str = "tracestate";
/// W3C baggage header.
pub const BAGGAGE: &str = "baggage";

/// The kit's propagator: W3C TraceContext, then W3C Baggage.
static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

/// Writes propagated fields into AMQP headers as long strings.
struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.into(), AMQPValue::LongString(value.into()));
    }
}

/// Reads propagated fields from AMQP headers (long / short strings and byte arrays, UTF-8).
struct HeaderExtractor<'a>(&'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(&ShortString::from(key))? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            AMQPValue::ByteArray(b) => std::str::from_utf8(b.as_slice()).ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// Injects `cx` (its span context if valid, its baggage if any) into `headers`.
pub fn inject(cx: &Context, headers: &mut FieldTable) {
    PROPAGATOR.inject_context(cx, &mut HeaderInjector(headers));
}

/// The context carried by `headers` (a remote span context and baggage; empty if none).
pub fn extract(headers: &FieldTable) -> Context {
    PROPAGATOR.extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// A W3C trace context as plain data.
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

    /// Writes the context into `headers` as it is (long strings), without any span of the kit.
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

    /// The same context as an OpenTelemetry [`Context`] (a remote parent, with its baggage).
    pub fn to_context(&self) -> Context {
        let mut h = FieldTable::default();
        self.inject(&mut h);
        extract(&h)
    }
}

impl Message {
    /// Publishes as part of `ctx` (e.g. a `traceparent` from an HTTP request): the producer span
    /// is a child of it, instead of the caller's current OpenTelemetry context.
    pub fn with_trace(self, ctx: &TraceContext) -> Message {
        self.with_parent(ctx.to_context())
    }

    /// Publishes with `cx` as the producer span's parent, instead of the caller's current
    /// OpenTelemetry context.
    pub fn with_parent(mut self, cx: Context) -> Message {
        self.trace = TracePropagation::Parent(cx);
        self
    }
}

impl Delivery {
    /// The producer's context carried by the message, if any.
    pub fn trace_context(&self) -> Option<TraceContext> {
        TraceContext::extract(self.properties.headers().as_ref()?)
    }

    /// The producer's context as an OpenTelemetry [`Context`] (empty if the message carries none).
    /// The handler already runs inside the kit's consumer span, whose parent this is.
    pub fn creation_context(&self) -> Context {
        self.properties
            .headers()
            .as_ref()
            .map(extract)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::TraceContextExt;

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
    fn propagator_writes_long_strings_and_reads_other_string_types() {
        let mut root = TraceContext::new_root();
        root.tracestate = Some("warren=1".into());
        root.baggage = Some("tenant=acme".into());
        let cx = root.to_context();
        assert_eq!(cx.baggage().get("tenant").map(|v| v.as_str()), Some("acme"));
        let mut h = FieldTable::default();
        inject(&cx, &mut h);
        match h.inner().get(&ShortString::from(TRACEPARENT)) {
            Some(AMQPValue::LongString(s)) => {
                assert_eq!(s.as_bytes(), root.traceparent().as_bytes())
            }
            other => panic!("traceparent as {other:?}"),
        }
        assert_eq!(header_str(&h, TRACESTATE).as_deref(), Some("warren=1"));
        assert_eq!(header_str(&h, BAGGAGE).as_deref(), Some("tenant=acme"));
        let mut short = FieldTable::default();
        short.insert(
            TRACEPARENT.into(),
            AMQPValue::ShortString(root.traceparent().into()),
        );
        let sc = extract(&short).span().span_context().clone();
        assert!(sc.is_remote());
        assert_eq!(sc.trace_id().to_string(), root.trace_id);
        assert_eq!(sc.span_id().to_string(), root.span_id);
        assert!(!extract(&FieldTable::default())
            .span()
            .span_context()
            .is_valid());
    }
}
