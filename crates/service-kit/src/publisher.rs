//! Publishing with an awaitable per-message confirm over a small pool of confirm-mode channels.
//!
//! Each channel has a bounded window of unconfirmed publishes (a semaphore). `publish` waits for a
//! window slot, a connection and an unblocked broker, all up to one deadline, then fails with a
//! typed error: nothing is ever buffered without bound. A publish whose channel or connection is
//! lost before its confirm is sent again, with the same message id, once the connection is back
//! (at-least-once): `Ok` means the broker confirmed it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::Channel;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::connection::{Live, Managed};
use crate::error::{KitError, Result};
use crate::message::Message;
use crate::metrics::Metrics;
use crate::spans;

/// How often a publish waiting on a blocked connection checks again.
const BLOCKED_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Pause before re-trying after a channel could not be opened or a publish failed to be written.
const REPUBLISH_PAUSE: Duration = Duration::from_millis(50);

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Confirm-mode channels in the pool.
    pub channels: usize,
    /// Unconfirmed publishes allowed per channel.
    pub window_per_channel: usize,
    /// How long one `publish` may wait in total (window, reconnect, blocked broker, confirm).
    pub deadline: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            channels: 2,
            window_per_channel: 256,
            deadline: Duration::from_secs(5),
        }
    }
}

/// One pooled channel and its window.
struct Slot {
    /// Free places in the confirm window.
    permits: Semaphore,
    /// The open channel and the connection generation it belongs to.
    channel: Mutex<Option<(u64, Channel)>>,
}

/// A publisher; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Publisher {
    /// Shared state.
    inner: Arc<Inner>,
}

/// State shared by clones.
struct Inner {
    /// The publishing connection.
    conn: Managed,
    /// The channel pool.
    slots: Vec<Slot>,
    /// Round-robin cursor over `slots`.
    next: AtomicUsize,
    /// Settings.
    cfg: PublisherConfig,
    /// Counters.
    metrics: Arc<Metrics>,
}

impl Publisher {
    pub(crate) fn new(conn: Managed, cfg: PublisherConfig, metrics: Arc<Metrics>) -> Publisher {
        let slots = (0..cfg.channels.max(1))
            .map(|_| Slot {
                permits: Semaphore::new(cfg.window_per_channel.max(1)),
                channel: Mutex::new(None),
            })
            .collect();
        Publisher {
            inner: Arc::new(Inner {
                conn,
                slots,
                next: AtomicUsize::new(0),
                cfg,
                metrics,
            }),
        }
    }

    /// The configured deadline.
    pub fn deadline(&self) -> Duration {
        self.inner.cfg.deadline
    }

    /// True while the broker blocks the publishing connection.
    pub fn blocked(&self) -> bool {
        self.inner
            .conn
            .current()
            .is_some_and(|l| l.conn.status().blocked())
    }

    /// Publishes and waits for the broker's confirm; returns the message id.
    pub async fn publish(&self, msg: Message) -> Result<String> {
        self.publish_until(msg, Instant::now() + self.inner.cfg.deadline)
            .await
    }

    /// Like [`Publisher::publish`] with an explicit deadline.
    ///
    /// Creates the `PRODUCER` span `publish {destination}` (a child of the caller's current
    /// OpenTelemetry context, or of [`Message::with_parent`]) and injects it into the headers;
    /// see [`crate::spans`].
    pub async fn publish_until(&self, mut msg: Message, deadline: Instant) -> Result<String> {
        msg.ensure_defaults();
        let Some(cx) = spans::start_publish(&mut msg, self.inner.conn.peer()) else {
            return self.send(msg, deadline).await;
        };
        let r = self.send(msg, deadline).await;
        spans::end_with(&cx, &r);
        r
    }

    /// Sends `msg` (defaults filled in) and waits for its confirm, resending after a reconnect.
    async fn send(&self, msg: Message, deadline: Instant) -> Result<String> {
        let inner = &*self.inner;
        let id = msg.id().unwrap_or_default().to_owned();
        let total = inner.cfg.deadline;
        let slot = &inner.slots[inner.next.fetch_add(1, Ordering::Relaxed) % inner.slots.len()];
        let _permit = match tokio::time::timeout_at(deadline, slot.permits.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(KitError::Shutdown),
            Err(_) => return Err(KitError::WindowFull(total)),
        };
        let mut sent_before = false;
        loop {
            let live = inner.conn.wait(deadline).await?;
            wait_unblocked(&live, deadline, total).await?;
            let ch = match slot_channel(slot, &live).await {
                Ok(ch) => ch,
                Err(e) => {
                    tracing::debug!(error = %e, "publisher channel open failed; retrying");
                    pause_or_fail(deadline, total).await?;
                    continue;
                }
            };
            if sent_before {
                inner.metrics.republished.inc();
            }
            inner.metrics.published.inc();
            let opts = BasicPublishOptions {
                mandatory: msg.mandatory,
                ..Default::default()
            };
            let sent = ch
                .basic_publish(
                    &msg.exchange,
                    &msg.routing_key,
                    opts,
                    &msg.body,
                    msg.properties.clone(),
                )
                .await;
            sent_before = true;
            let confirm = match sent {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, id, "publish not written; will resend");
                    pause_or_fail(deadline, total).await?;
                    continue;
                }
            };
            match tokio::time::timeout_at(deadline, confirm).await {
                Err(_) if live.conn.status().blocked() => return Err(KitError::Blocked(total)),
                Err(_) => return Err(KitError::ConfirmTimeout(total)),
                Ok(Ok(Confirmation::Ack(None))) | Ok(Ok(Confirmation::NotRequested)) => {
                    inner.metrics.confirmed.inc();
                    return Ok(id);
                }
                Ok(Ok(Confirmation::Ack(Some(ret)))) | Ok(Ok(Confirmation::Nack(Some(ret)))) => {
                    inner.metrics.returned.inc();
                    return Err(KitError::Returned {
                        code: ret.reply_code,
                        text: ret.reply_text.as_str().to_owned(),
                    });
                }
                Ok(Ok(Confirmation::Nack(None))) => {
                    inner.metrics.nacked.inc();
                    return Err(KitError::Nacked);
                }
                Ok(Err(e)) => {
                    tracing::info!(error = %e, id, "publish lost before its confirm; will resend");
                    pause_or_fail(deadline, total).await?;
                }
            }
        }
    }
}

/// Waits while the broker blocks `live`, up to `deadline`.
async fn wait_unblocked(live: &Live, deadline: Instant, total: Duration) -> Result<()> {
    while live.conn.status().blocked() {
        if Instant::now() + BLOCKED_POLL_INTERVAL > deadline {
            return Err(KitError::Blocked(total));
        }
        tokio::time::sleep(BLOCKED_POLL_INTERVAL).await;
    }
    Ok(())
}

/// Sleeps briefly before a retry, or fails if that would pass the deadline.
async fn pause_or_fail(deadline: Instant, total: Duration) -> Result<()> {
    if Instant::now() + REPUBLISH_PAUSE > deadline {
        return Err(KitError::NotConnected(total));
    }
    tokio::time::sleep(REPUBLISH_PAUSE).await;
    Ok(())
}

/// The slot's confirm channel on `live`, opened if missing, closed or from an older connection.
async fn slot_channel(slot: &Slot, live: &Live) -> Result<Channel> {
    let mut guard = slot.channel.lock().await;
    if let Some((generation, ch)) = guard.as_ref() {
        if *generation == live.generation && ch.status().connected() {
            return Ok(ch.clone());
        }
    }
    *guard = None;
    let ch = live.conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    *guard = Some((live.generation, ch.clone()));
    Ok(ch)
}
