//! OpenTelemetry spans through a real broker, recorded by the SDK's in-memory exporter installed
//! as the global tracer provider (once per test process; each test looks only at its own trace).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lapin::types::{AMQPValue, ShortString};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::context::FutureExt;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceId, Tracer,
};
use opentelemetry::{global, Context, KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use super::qcfg;
use crate::harness::*;
use service_kit::*;

/// The process-wide exporter (installed as the global provider's only processor).
pub fn otel() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        global::set_tracer_provider(provider);
        exporter
    })
}

/// The finished spans of one trace.
fn trace_spans(trace: TraceId) -> Vec<SpanData> {
    otel()
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}

fn attr(s: &SpanData, key: &str) -> Option<Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn attr_str(s: &SpanData, key: &str) -> Option<String> {
    attr(s, key).map(|v| v.as_str().into_owned())
}

fn one<'a>(spans: &'a [SpanData], what: &str, f: impl Fn(&SpanData) -> bool) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} span in {spans:#?}");
    found[0]
}

/// The port in an `amqp://...host:port/...` URL (5672 when none).
fn url_port(url: &str) -> i64 {
    let authority = url.split('@').next_back().unwrap_or(url);
    let hostport = authority.split('/').next().unwrap_or(authority);
    hostport
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(5672)
}

/// A link (a remote context, extracted from headers) names the same span as `local`.
fn assert_same(link: &SpanContext, local: &SpanContext) {
    assert!(link.is_remote());
    assert_eq!(
        (link.trace_id(), link.span_id()),
        (local.trace_id(), local.span_id())
    );
}

/// Checks the attributes every span of the kit has (system, server address and port).
fn assert_common(s: &SpanData, url: &str) {
    assert_eq!(
        attr_str(s, "messaging.system").as_deref(),
        Some("rabbitmq"),
        "{s:?}"
    );
    assert_eq!(
        attr_str(s, "server.address").as_deref(),
        Some("127.0.0.1"),
        "{s:?}"
    );
    assert_eq!(
        attr(s, "server.port"),
        Some(Value::I64(url_port(url))),
        "{s:?}"
    );
}

/// An application span with baggage `tenant=acme`, as the current context of what it wraps.
fn app_context(name: &'static str) -> Context {
    let span = global::tracer("app").start(name);
    Context::current_with_span(span).with_baggage(vec![KeyValue::new("tenant", "acme")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_publish_and_process_spans_are_linked_and_attributed() {
    otel();
    let b = broker();
    let q = uniq("otel");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    // What the handler saw: the traceparent header as sent, and the baggage of its context.
    let seen = Arc::new(Mutex::new(Vec::<(Option<AMQPValue>, Option<String>)>::new()));
    let s = seen.clone();
    let handle = kit
        .consume(qcfg(&q), move |d| {
            let raw = d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(&ShortString::from("traceparent")).cloned());
            let tenant = Context::current()
                .baggage()
                .get("tenant")
                .map(|v| v.to_string());
            s.lock().unwrap().push((raw, tenant));
            global::tracer("app").start("handler-sync").end();
            async move {
                tokio::task::yield_now().await;
                global::tracer("app").start("handler-async").end();
                Outcome::Ack
            }
        })
        .await;
    let cx = app_context("app-request");
    let app = cx.span().span_context().clone();
    let mut m = Message::new("", &q, "x");
    m.properties = m.properties.with_correlation_id("corr-1".into());
    let id = kit
        .publisher(PublisherConfig::default())
        .publish(m)
        .with_context(cx.clone())
        .await
        .unwrap();
    cx.span().end();
    eventually("the handler's spans", || {
        trace_spans(app.trace_id())
            .iter()
            .any(|s| s.name == "handler-async")
    })
    .await;
    eventually("the process span", || {
        trace_spans(app.trace_id())
            .iter()
            .any(|s| s.span_kind == SpanKind::Consumer)
    })
    .await;
    let spans = trace_spans(app.trace_id());
    let publish = one(&spans, "producer", |s| s.span_kind == SpanKind::Producer);
    assert_eq!(publish.name, format!("publish {q}"));
    assert_eq!(
        publish.parent_span_id,
        app.span_id(),
        "the producer span is a child of the application span"
    );
    assert_common(publish, &b.url);
    for (k, v) in [
        ("messaging.operation.type", "send"),
        ("messaging.operation.name", "publish"),
        ("messaging.destination.name", q.as_str()),
        ("messaging.rabbitmq.destination.routing_key", q.as_str()),
        ("messaging.message.id", id.as_str()),
        ("messaging.message.conversation_id", "corr-1"),
    ] {
        assert_eq!(attr_str(publish, k).as_deref(), Some(v), "publish {k}");
    }
    let process = one(&spans, "consumer", |s| s.span_kind == SpanKind::Consumer);
    assert_eq!(process.name, format!("process {q}"));
    assert_eq!(process.span_context.trace_id(), app.trace_id());
    assert_eq!(
        process.parent_span_id,
        publish.span_context.span_id(),
        "the consumer span is a child of the producer span"
    );
    assert!(process.parent_span_is_remote);
    assert_eq!(process.links.links.len(), 1, "{process:?}");
    assert_same(&process.links.links[0].span_context, &publish.span_context);
    assert_common(process, &b.url);
    for (k, v) in [
        ("messaging.operation.type", "process"),
        ("messaging.operation.name", "process"),
        ("messaging.destination.name", q.as_str()),
        ("messaging.rabbitmq.destination.routing_key", q.as_str()),
        ("messaging.message.id", id.as_str()),
        ("messaging.message.conversation_id", "corr-1"),
        ("service_kit.outcome", "ack"),
    ] {
        assert_eq!(attr_str(process, k).as_deref(), Some(v), "process {k}");
    }
    assert_eq!(attr(process, "service_kit.attempt"), Some(Value::I64(1)));
    assert!(
        matches!(attr(process, "messaging.rabbitmq.message.delivery_tag"), Some(Value::I64(t)) if t >= 1),
        "{process:?}"
    );
    assert_eq!(process.status, Status::Unset);
    for name in ["handler-sync", "handler-async"] {
        let h = one(&spans, name, |s| s.name == name);
        assert_eq!(
            h.parent_span_id,
            process.span_context.span_id(),
            "{name} is a child of the consumer span"
        );
    }
    let v = seen.lock().unwrap().clone();
    assert_eq!(v.len(), 1);
    let expected = format!(
        "00-{}-{}-01",
        app.trace_id(),
        publish.span_context.span_id()
    );
    match &v[0].0 {
        Some(AMQPValue::LongString(s)) => assert_eq!(s.as_bytes(), expected.as_bytes()),
        other => panic!("traceparent header {other:?}, want a long string {expected}"),
    }
    assert_eq!(
        v[0].1.as_deref(),
        Some("acme"),
        "baggage reaches the handler"
    );
    handle.shutdown().await;
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), retry::dlq_name(&q)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_retried_message_keeps_its_producer_and_counts_attempts() {
    otel();
    let b = broker();
    let q = uniq("otel-retry");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let mut cfg = qcfg(&q);
    cfg.retry.delays = vec![Duration::from_millis(100)];
    let handle = kit
        .consume(cfg, |d| async move {
            if d.attempt == 1 {
                Outcome::Retry("flaky".into())
            } else {
                Outcome::Ack
            }
        })
        .await;
    let cx = app_context("app-retry");
    let app = cx.span().span_context().clone();
    kit.publisher(PublisherConfig::default())
        .publish(Message::new("", &q, "r"))
        .with_context(cx.clone())
        .await
        .unwrap();
    cx.span().end();
    eventually("two process spans", || {
        trace_spans(app.trace_id())
            .iter()
            .filter(|s| s.span_kind == SpanKind::Consumer)
            .count()
            == 2
    })
    .await;
    let spans = trace_spans(app.trace_id());
    let publish = one(&spans, "producer (the retry copy makes none)", |s| {
        s.span_kind == SpanKind::Producer
    });
    let mut process: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Consumer)
        .collect();
    process.sort_by_key(|s| s.start_time);
    for (i, p) in process.iter().enumerate() {
        assert_eq!(
            attr(p, "service_kit.attempt"),
            Some(Value::I64(i as i64 + 1)),
            "{p:?}"
        );
        assert_eq!(p.parent_span_id, publish.span_context.span_id(), "{p:?}");
        assert_eq!(p.links.links.len(), 1);
        assert_same(&p.links.links[0].span_context, &publish.span_context);
        assert_common(p, &b.url);
    }
    assert_eq!(
        attr_str(process[0], "service_kit.outcome").as_deref(),
        Some("retry")
    );
    assert_eq!(attr_str(process[0], "error.type").as_deref(), Some("retry"));
    assert_eq!(process[0].status, Status::error("flaky"));
    assert_eq!(
        attr_str(process[1], "service_kit.outcome").as_deref(),
        Some("ack")
    );
    handle.shutdown().await;
    kit.shutdown().await;
    cleanup(
        &b.url,
        &[
            q.clone(),
            retry::dlq_name(&q),
            retry::ladder_queue(&q, Duration::from_millis(100)),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_rpc_round_trip_has_client_server_and_reply_spans() {
    otel();
    let b = broker();
    let q = uniq("otel-rpc");
    let kit = Kit::start(b.config(), Topology::new().queue(&q));
    let server = kit
        .rpc_server(qcfg(&q), |d| async move {
            global::tracer("app").start("server-work").end();
            d.body
        })
        .await;
    eventually("server up", || {
        kit.health().report().consumers.get(&q) == Some(&true)
    })
    .await;
    let client = kit.rpc_client();
    let cx = app_context("app-call");
    let app = cx.span().span_context().clone();
    let reply = client
        .call("", &q, b"ping")
        .with_context(cx.clone())
        .await
        .unwrap();
    assert_eq!(reply.text(), "ping");
    cx.span().end();
    eventually("client and server spans", || {
        let s = trace_spans(app.trace_id());
        s.iter().any(|s| s.span_kind == SpanKind::Client)
            && s.iter().any(|s| s.span_kind == SpanKind::Server)
    })
    .await;
    let spans = trace_spans(app.trace_id());
    let call = one(&spans, "client", |s| s.span_kind == SpanKind::Client);
    assert_eq!(call.name, format!("call {q}"));
    assert_eq!(call.parent_span_id, app.span_id());
    assert_common(call, &b.url);
    let cid = attr_str(call, "messaging.message.conversation_id").expect("correlation id");
    let srv = one(&spans, "server", |s| s.span_kind == SpanKind::Server);
    assert_eq!(srv.name, format!("process {q}"));
    assert_eq!(srv.parent_span_id, call.span_context.span_id());
    assert_same(&srv.links.links[0].span_context, &call.span_context);
    assert_eq!(
        attr_str(srv, "messaging.message.conversation_id").as_deref(),
        Some(cid.as_str())
    );
    let work = one(&spans, "server-work", |s| s.name == "server-work");
    assert_eq!(work.parent_span_id, srv.span_context.span_id());
    let reply_span = one(&spans, "reply producer", |s| {
        s.span_kind == SpanKind::Producer
    });
    assert_eq!(reply_span.name, "publish", "direct reply-to is anonymous");
    assert_eq!(reply_span.parent_span_id, srv.span_context.span_id());
    assert_eq!(
        attr(reply_span, "messaging.destination.temporary"),
        Some(Value::Bool(true))
    );
    assert_eq!(
        attr_str(reply_span, "messaging.message.conversation_id").as_deref(),
        Some(cid.as_str())
    );
    server.shutdown().await;
    kit.shutdown().await;
    cleanup(&b.url, &[q.clone(), retry::dlq_name(&q)]).await;
}
