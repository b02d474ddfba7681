//! Request/reply over direct reply-to (`amq.rabbitmq.reply-to`): many calls in flight on one
//! channel, correlation ids, a timeout per call, `mandatory` so that a missing server is a fast
//! error; and a server helper that answers through the kit's publisher.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::connection::{Live, Managed};
use crate::consumer::Outcome;
use crate::error::{KitError, Result};
use crate::message::{new_id, Delivery, Message};
use crate::publisher::Publisher;
use crate::spans;

/// The pseudo-queue of direct reply-to.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Calls waiting for their reply, by correlation id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Delivery>>>>;

/// An RPC client; cheap to clone.
#[derive(Clone)]
pub struct RpcClient {
    /// The connection calls go out on.
    conn: Managed,
    /// The reply channel and the generation it belongs to.
    channel: Arc<tokio::sync::Mutex<Option<(u64, Channel)>>>,
    /// Calls in flight.
    pending: Pending,
    /// Default timeout per call.
    timeout: Duration,
}

/// Removes a call's entry when the call ends (reply, timeout or the caller dropping the future).
struct PendingGuard {
    /// The map.
    pending: Pending,
    /// The call's correlation id.
    id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&self.id);
        }
    }
}

impl RpcClient {
    pub(crate) fn new(conn: Managed, timeout: Duration) -> RpcClient {
        RpcClient {
            conn,
            channel: Arc::default(),
            pending: Arc::default(),
            timeout,
        }
    }

    /// Calls with the default timeout.
    pub async fn call(&self, exchange: &str, routing_key: &str, body: &[u8]) -> Result<Delivery> {
        self.call_with_timeout(exchange, routing_key, body, self.timeout)
            .await
    }

    /// Calls: publishes with `reply_to` and a fresh correlation id, then waits up to `timeout`.
    ///
    /// The call is a `CLIENT` span `call {destination}` (child of the caller's current
    /// OpenTelemetry context) injected into the request; the server's span is its child.
    pub async fn call_with_timeout(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Delivery> {
        let id = new_id();
        let cx = spans::start_call(exchange, routing_key, &id, self.conn.peer());
        let r = self
            .call_as(&cx, id, exchange, routing_key, body, timeout)
            .await;
        spans::end_with(&cx, &r);
        r
    }

    async fn call_as(
        &self,
        cx: &opentelemetry::Context,
        id: String,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Delivery> {
        let deadline = Instant::now() + timeout;
        let live = self.conn.wait(deadline).await?;
        let ch = self.reply_channel(&live).await?;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), tx);
        }
        let _guard = PendingGuard {
            pending: self.pending.clone(),
            id: id.clone(),
        };
        let mut props = BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(id.as_str().into())
            .with_message_id(id.as_str().into());
        spans::inject_into(cx, &mut props);
        let confirm = ch
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                props,
            )
            .await?;
        match tokio::time::timeout_at(deadline, confirm).await {
            Err(_) => return Err(KitError::RpcTimeout(timeout)),
            Ok(Ok(Confirmation::Ack(Some(ret)))) | Ok(Ok(Confirmation::Nack(Some(ret)))) => {
                return Err(KitError::Returned {
                    code: ret.reply_code,
                    text: ret.reply_text.as_str().to_owned(),
                })
            }
            Ok(Ok(Confirmation::Nack(None))) => return Err(KitError::Nacked),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(_)) => Err(KitError::NotConnected(timeout)),
            Err(_) => Err(KitError::RpcTimeout(timeout)),
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    async fn reply_channel(&self, live: &Live) -> Result<Channel> {
        let mut guard = self.channel.lock().await;
        if let Some((g, ch)) = guard.as_ref() {
            if *g == live.generation && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        *guard = None;
        let ch = live.conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let mut replies = ch
            .basic_consume(
                REPLY_TO,
                "",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending = self.pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = replies.next().await {
                let Some(cid) = d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.to_string())
                else {
                    continue;
                };
                let waiter = pending.lock().ok().and_then(|mut p| p.remove(&cid));
                if let Some(tx) = waiter {
                    let _ = tx.send(Delivery {
                        exchange: d.exchange.as_str().to_owned(),
                        routing_key: d.routing_key.as_str().to_owned(),
                        body: d.data,
                        properties: d.properties,
                        redelivered: d.redelivered,
                        attempt: 1,
                        delivery_tag: d.delivery_tag,
                    });
                }
            }
        });
        *guard = Some((live.generation, ch.clone()));
        Ok(ch)
    }
}

/// Wraps a reply-producing function into a consumer handler that answers to `reply_to` with the
/// request's correlation id, then acks (the reply is confirmed first).
pub(crate) fn server_handler<F, Fut>(
    publisher: Publisher,
    f: F,
) -> impl Fn(Delivery) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    let f = Arc::new(f);
    move |d: Delivery| {
        let f = f.clone();
        let publisher = publisher.clone();
        Box::pin(async move {
            let reply_to = d.properties.reply_to().as_ref().map(|s| s.to_string());
            let cid = d.properties.correlation_id().clone();
            let body = f(d).await;
            let Some(reply_to) = reply_to else {
                return Outcome::Poison("rpc request without reply_to".into());
            };
            let mut m = Message::new("", &reply_to, body)
                .not_mandatory()
                .transient();
            if let Some(cid) = cid {
                m.properties = m.properties.with_correlation_id(cid);
            }
            match publisher.publish(m).await {
                Ok(_) => Outcome::Ack,
                Err(e) => {
                    tracing::warn!(error = %e, "rpc reply not sent");
                    Outcome::Ack
                }
            }
        })
    }
}
