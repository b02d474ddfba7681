//! A consumer worker pool: prefetch, a bounded number of concurrent handlers, outcomes settled on
//! the wire, re-subscription after any channel close / cancel / reconnect, and graceful drain.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use opentelemetry::context::FutureExt;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Backoff;
use crate::connection::Managed;
use crate::health::Health;
use crate::inbox::{Claim, Inbox};
use crate::message::{header_u64, Delivery};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::retry::{next_copy, retry_topology, RetryMode, RetryPolicy, ATTEMPTS_HEADER};
use crate::spans::{self, Peer};
use crate::topology::Topology;

/// How long a delivery whose message id is in a handler right now waits before it is requeued.
const INBOX_BUSY_REQUEUE_DELAY: Duration = Duration::from_millis(50);

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: ack.
    Ack,
    /// Failed, try again later (delayed redelivery through the broker; DLQ after the last attempt).
    Retry(String),
    /// Will never succeed: straight to the dead-letter queue with this error.
    Poison(String),
    /// Not now: give it back (requeue), not counted as a failure.
    Requeue,
}

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
/// A handler.
pub type Handler = Arc<dyn Fn(Delivery) -> HandlerFuture + Send + Sync>;

/// Consumer settings.
#[derive(Clone)]
pub struct ConsumerConfig {
    /// The queue (declare it in the kit's topology).
    pub queue: String,
    /// `basic.qos` prefetch count.
    pub prefetch: u16,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// How long shutdown waits for running handlers before giving their deliveries back.
    pub drain_deadline: Duration,
    /// Optional idempotent inbox.
    pub inbox: Option<Arc<Inbox>>,
    /// Pause before re-subscribing after a channel loss.
    pub resubscribe_backoff: Backoff,
}

impl ConsumerConfig {
    /// Defaults for `queue`: prefetch 32, 8 handlers, default retry, 10 s drain.
    pub fn new(queue: &str) -> ConsumerConfig {
        ConsumerConfig {
            queue: queue.into(),
            prefetch: 32,
            concurrency: 8,
            retry: RetryPolicy::default(),
            drain_deadline: Duration::from_secs(10),
            inbox: None,
            resubscribe_backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
                multiplier: 2.0,
            },
        }
    }
}

/// A running consumer; [`ConsumerHandle::shutdown`] drains it.
pub struct ConsumerHandle {
    /// Tells the loop to stop.
    stop: watch::Sender<bool>,
    /// The loop.
    task: tokio::task::JoinHandle<()>,
}

impl ConsumerHandle {
    /// Graceful drain: cancel, let running handlers finish up to the drain deadline, requeue the rest.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Everything a handler task needs.
pub(crate) struct Ctx {
    /// Settings.
    pub cfg: ConsumerConfig,
    /// Retry transport, resolved.
    pub mode: RetryMode,
    /// The user's handler.
    pub handler: Handler,
    /// Publisher for retry / DLQ copies (on the publishing connection).
    pub publisher: Publisher,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Kind of the process spans: `Consumer`, or `Server` for the RPC server.
    pub span_kind: SpanKind,
    /// The broker, for the spans.
    pub peer: Peer,
}

/// Starts the consumer loop.
pub(crate) fn start(
    ctx: Ctx,
    conn: Managed,
    topology: Arc<Mutex<Topology>>,
    health: Health,
) -> ConsumerHandle {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(Arc::new(ctx), conn, topology, health, stop_rx));
    ConsumerHandle { stop, task }
}

/// Why a subscription ended.
enum End {
    /// Shutdown asked; the channel must stay open until running handlers have settled.
    Stop(lapin::Channel),
    /// Broker closed or cancelled; the reason label.
    Lost(String),
}

async fn run(
    ctx: Arc<Ctx>,
    conn: Managed,
    topology: Arc<Mutex<Topology>>,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    let queue = ctx.cfg.queue.clone();
    let permits = Arc::new(Semaphore::new(ctx.cfg.concurrency.max(1)));
    let (abort_tx, abort_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut failures: u32 = 0;
    health.set_consumer(&queue, false);
    let far = Duration::from_secs(3600 * 24 * 365);
    let mut open_channel = None;
    loop {
        let live = tokio::select! {
            l = conn.wait(Instant::now() + far) => match l { Ok(l) => l, Err(_) => break },
            _ = stop.changed() => break,
        };
        let end = subscribe(
            &ctx, &live, &topology, &health, &permits, &mut tasks, &abort_rx, &mut stop,
        )
        .await;
        health.set_consumer(&queue, false);
        match end {
            End::Stop(ch) => {
                open_channel = Some(ch);
                break;
            }
            End::Lost(reason) => {
                if live.conn.status().connected() {
                    ctx.metrics.channel_recovery(&reason);
                    tracing::warn!(%queue, %reason, "consumer channel lost; re-subscribing");
                } else {
                    tracing::info!(%queue, "consumer connection lost; waiting for reconnect");
                }
                let delay = ctx.cfg.resubscribe_backoff.delay(failures);
                failures = failures.saturating_add(1).min(16);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => break,
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    // Drain: running handlers get until the deadline, then their deliveries are requeued.
    let drained = tokio::time::timeout(ctx.cfg.drain_deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let _ = abort_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
    if let Some(ch) = open_channel {
        let _ = ch.close(200, "drained").await;
    }
    health.set_consumer(&queue, false);
}

#[allow(clippy::too_many_arguments)]
async fn subscribe(
    ctx: &Arc<Ctx>,
    live: &crate::connection::Live,
    topology: &Arc<Mutex<Topology>>,
    health: &Health,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    abort: &watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let queue = &ctx.cfg.queue;
    let lost = |e: lapin::Error| End::Lost(reason_of(&e));
    let ch = match live.conn.create_channel().await {
        Ok(ch) => ch,
        Err(e) => return lost(e),
    };
    let reason: Arc<Mutex<Option<String>>> = Arc::default();
    let r = reason.clone();
    ch.on_error(move |e| {
        if let Ok(mut slot) = r.lock() {
            slot.get_or_insert(reason_of(&e));
        }
    });
    let mut t = topology.lock().map(|t| t.clone()).unwrap_or_default();
    t.merge(&retry_topology(queue, &ctx.cfg.retry, ctx.mode));
    if let Err(e) = t.declare(&ch).await {
        return lost(e);
    }
    if let Err(e) = ch
        .basic_qos(ctx.cfg.prefetch, BasicQosOptions::default())
        .await
    {
        return lost(e);
    }
    let tag = format!("service-kit.{}", crate::message::new_id());
    let mut consumer = match ch
        .basic_consume(
            queue,
            &tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return lost(e),
    };
    health.set_consumer(queue, true);
    loop {
        let next = tokio::select! {
            n = consumer.next() => n,
            _ = stop.changed() => {
                let _ = ch.basic_cancel(&tag, BasicCancelOptions::default()).await;
                // Deliveries prefetched but not started are given back (not failures).
                while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await {
                    let _ = d.acker.nack(BasicNackOptions { requeue: true, multiple: false }).await;
                    ctx.metrics.requeued.inc();
                }
                return End::Stop(ch);
            }
        };
        match next {
            Some(Ok(d)) => {
                let permit = match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return End::Stop(ch),
                };
                let ctx = ctx.clone();
                let abort = abort.clone();
                tasks.spawn(async move {
                    process(&ctx, d, abort).await;
                    drop(permit);
                });
            }
            Some(Err(e)) => return lost(e),
            None => {
                let why = reason.lock().ok().and_then(|r| r.clone());
                let _ = ch.close(200, "re-subscribing").await;
                return End::Lost(why.unwrap_or_else(|| "cancel".into()));
            }
        }
    }
}

/// A low-cardinality reason label: the AMQP reply code, or the error kind.
fn reason_of(e: &lapin::Error) -> String {
    match e {
        lapin::Error::ProtocolError(a) => a.get_id().to_string(),
        lapin::Error::IOError(_) => "io".into(),
        lapin::Error::InvalidChannelState(_) => "channel-state".into(),
        lapin::Error::InvalidConnectionState(_) => "connection".into(),
        _ => "other".into(),
    }
}

async fn process(ctx: &Ctx, d: lapin::message::Delivery, mut abort: watch::Receiver<bool>) {
    let headers = d.properties.headers().clone().unwrap_or_default();
    let delivery = Delivery {
        exchange: d.exchange.as_str().to_owned(),
        routing_key: d.routing_key.as_str().to_owned(),
        body: d.data.clone(),
        properties: d.properties.clone(),
        redelivered: d.redelivered,
        attempt: header_u64(&headers, ATTEMPTS_HEADER).unwrap_or(1).max(1) as u32,
        delivery_tag: d.delivery_tag,
    };
    let acker = d.acker;
    ctx.metrics.consumed.inc();
    let id = delivery.message_id().map(str::to_owned);
    let requeue = BasicNackOptions {
        requeue: true,
        multiple: false,
    };
    let claimed = match (&ctx.cfg.inbox, &id) {
        (Some(inbox), Some(id)) => match inbox.claim(id) {
            Ok(Claim::Fresh) => Some((inbox, id)),
            Ok(Claim::Seen) => {
                ctx.metrics.duplicates.inc();
                let _ = acker.ack(BasicAckOptions::default()).await;
                return;
            }
            Ok(Claim::Busy) | Err(_) => {
                // A copy is in a handler now: give this one back after a pause; by then the
                // first is committed (this one is acked as a duplicate) or released.
                tokio::time::sleep(INBOX_BUSY_REQUEUE_DELAY).await;
                ctx.metrics.requeued.inc();
                let _ = acker.nack(requeue).await;
                return;
            }
        },
        _ => None,
    };
    // The handler runs inside the process span's context: the application's spans are its children.
    let cx = spans::start_process(&delivery, &ctx.cfg.queue, ctx.span_kind.clone(), &ctx.peer);
    let log_span = tracing::info_span!(
        "process",
        queue = %ctx.cfg.queue,
        message_id = id.as_deref().unwrap_or_default(),
        attempt = delivery.attempt,
        trace_id = %cx.span().span_context().trace_id(),
    );
    let started = Instant::now();
    let run = async {
        let mut tries = 0;
        loop {
            let handled = {
                let _attached = cx.clone().attach();
                (ctx.handler)(delivery.clone())
            };
            let outcome = handled.with_context(cx.clone()).await;
            match outcome {
                Outcome::Retry(_) if tries < ctx.cfg.retry.in_process_retries => {
                    tries += 1;
                    tokio::time::sleep(ctx.cfg.retry.in_process_delay).await;
                }
                o => return o,
            }
        }
    };
    let outcome = tokio::select! {
        o = tracing::Instrument::instrument(run, log_span) => Some(o),
        _ = abort.changed() => None,
    };
    let dead = delivery.attempt >= ctx.cfg.retry.max_attempts;
    ctx.metrics
        .handler_duration
        .observe(started.elapsed().as_secs_f64());
    if let (Some((inbox, id)), false) = (claimed, outcome == Some(Outcome::Ack)) {
        inbox.release(id);
    }
    let settled = match &outcome {
        None | Some(Outcome::Requeue) => {
            ctx.metrics.requeued.inc();
            acker.nack(requeue).await
        }
        Some(Outcome::Ack) => {
            if let (Some(inbox), Some(id)) = (&ctx.cfg.inbox, &id) {
                if let Err(e) = inbox.commit(id) {
                    tracing::error!(error = %e, "inbox commit failed; requeueing");
                    ctx.metrics.requeued.inc();
                    let _ = acker.nack(requeue).await;
                    spans::end_process(&cx, Some(&Outcome::Requeue), false);
                    return;
                }
            }
            ctx.metrics.acked.inc();
            acker.ack(BasicAckOptions::default()).await
        }
        Some(Outcome::Retry(err)) => forward(ctx, &delivery, err, dead, acker).await,
        Some(Outcome::Poison(err)) => forward(ctx, &delivery, err, true, acker).await,
    };
    spans::end_process(&cx, outcome.as_ref(), dead);
    if let Err(e) = settled {
        tracing::warn!(error = %e, "settling a delivery failed (the broker will redeliver it)");
    }
}

/// Publishes the retry or DLQ copy (confirmed), then acks the original; requeues it if the copy failed.
async fn forward(
    ctx: &Ctx,
    d: &Delivery,
    err: &str,
    dead: bool,
    acker: lapin::acker::Acker,
) -> lapin::Result<()> {
    let copy = next_copy(d, &ctx.cfg.queue, &ctx.cfg.retry, ctx.mode, err, dead);
    match ctx.publisher.publish(copy).await {
        Ok(_) => {
            if dead {
                ctx.metrics.dead_lettered.inc();
            } else {
                ctx.metrics.retried.inc();
            }
            acker.ack(BasicAckOptions::default()).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not publish the retry/DLQ copy; requeueing");
            ctx.metrics.requeued.inc();
            acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
        }
    }
}
