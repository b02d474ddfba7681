//! Retries through the broker: warren's (or the plugin's) delayed exchange when the broker has one,
//! a TTL + dead-letter ladder of wait queues otherwise; then the dead-letter queue.
//!
//! Headers the kit keeps on a retried / dead-lettered copy: [`ATTEMPTS_HEADER`] (the attempt the copy
//! will be), [`FIRST_FAILURE_HEADER`] (Unix ms of the first failure) and [`LAST_ERROR_HEADER`].

use std::time::Duration;

use lapin::options::ExchangeDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::ConnectionProperties;

use crate::config::KitConfig;

use crate::message::{header_u64, now_millis, Delivery, Message, TracePropagation};
use crate::topology::{table_str, Topology};

/// Attempt number of the copy (1 = first delivery).
pub const ATTEMPTS_HEADER: &str = "x-attempts";
/// Unix milliseconds of the first failed attempt.
pub const FIRST_FAILURE_HEADER: &str = "x-first-failure";
/// Text of the last error.
pub const LAST_ERROR_HEADER: &str = "x-last-error";
/// Delay header of delayed exchanges, ms.
pub const DELAY_HEADER: &str = "x-delay";
/// Longest error text kept in a header, bytes (headers travel with every copy).
const LAST_ERROR_BYTES_MAX: usize = 1024;
/// The shared delayed exchange the kit declares when the broker has delayed exchanges.
pub const DELAYED_EXCHANGE: &str = "service-kit.delayed";

/// How broker retries are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Detect: the delayed exchange if the broker accepts `x-delayed-message`, else the ladder.
    Auto,
    /// A delayed exchange (`x-delayed-message`, `x-delay` header).
    DelayedExchange,
    /// Per-delay wait queues with `x-message-ttl` that dead-letter back to the work queue.
    TtlLadder,
}

/// When and how often to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total (first delivery included); then the dead-letter queue.
    pub max_attempts: u32,
    /// Broker delay before attempt 2, 3, ...; the last one repeats.
    pub delays: Vec<Duration>,
    /// Quick in-process re-runs of the handler before a broker retry.
    pub in_process_retries: u32,
    /// Pause between in-process re-runs.
    pub in_process_delay: Duration,
    /// How retries travel.
    pub mode: RetryMode,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(10),
                Duration::from_secs(60),
                Duration::from_secs(600),
            ],
            in_process_retries: 0,
            in_process_delay: Duration::from_millis(100),
            mode: RetryMode::Auto,
        }
    }
}

impl RetryPolicy {
    /// Broker delay before attempt `next_attempt` (≥ 2).
    pub fn delay_before(&self, next_attempt: u32) -> Duration {
        let i = (next_attempt.saturating_sub(2) as usize).min(self.delays.len().saturating_sub(1));
        self.delays
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// Name of the dead-letter queue of `queue`.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// Name of the ladder wait queue of `queue` for `delay`.
pub fn ladder_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.retry.{}ms", delay.as_millis())
}

/// Whether the broker `cfg.url` names accepts the `x-delayed-message` exchange type. Probed on a
/// throwaway connection made as the kit's own are (so `warren-embedded://` works too): RabbitMQ
/// without the plugin answers with a connection error (503).
pub async fn broker_has_delayed_exchange(cfg: &KitConfig) -> bool {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("{}.probe", cfg.connection_name).into());
    let Ok(conn) = crate::connection::connect(cfg, props).await else {
        return false;
    };
    let ok = match conn.create_channel().await {
        Ok(ch) => ch
            .exchange_declare(
                DELAYED_EXCHANGE,
                crate::topology::kind("x-delayed-message"),
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                table_str(&[("x-delayed-type", "direct")]),
            )
            .await
            .is_ok(),
        Err(_) => false,
    };
    let _ = conn.close(200, "probe done").await;
    ok
}

/// The wait queues, exchange, bindings and dead-letter queue `queue` needs under `mode`
/// (which must be resolved, not `Auto`).
pub fn retry_topology(queue: &str, policy: &RetryPolicy, mode: RetryMode) -> Topology {
    let mut t = Topology::new().queue(&dlq_name(queue));
    match mode {
        RetryMode::DelayedExchange => {
            t.exchanges.push(crate::topology::ExchangeDef {
                name: DELAYED_EXCHANGE.into(),
                kind: "x-delayed-message".into(),
                durable: true,
                arguments: table_str(&[("x-delayed-type", "direct")]),
            });
            t = t.bind(queue, DELAYED_EXCHANGE, queue);
        }
        RetryMode::TtlLadder | RetryMode::Auto => {
            let mut delays = policy.delays.clone();
            delays.dedup();
            for d in delays {
                let mut args = table_str(&[
                    ("x-dead-letter-exchange", ""),
                    ("x-dead-letter-routing-key", queue),
                ]);
                args.insert(
                    "x-message-ttl".into(),
                    AMQPValue::LongLongInt(d.as_millis() as i64),
                );
                t = t.queue_with(&ladder_queue(queue, d), args);
            }
        }
    }
    t
}

/// The copy of `d` to publish for its next attempt (or, with `dead = true`, for the DLQ).
pub fn next_copy(
    d: &Delivery,
    queue: &str,
    policy: &RetryPolicy,
    mode: RetryMode,
    error: &str,
    dead: bool,
) -> Message {
    let mut headers: FieldTable = d.properties.headers().clone().unwrap_or_default();
    let first = header_u64(&headers, FIRST_FAILURE_HEADER).unwrap_or_else(now_millis);
    let next_attempt = d.attempt + 1;
    let mut err = error.to_owned();
    if err.len() > LAST_ERROR_BYTES_MAX {
        let mut cut = LAST_ERROR_BYTES_MAX;
        while !err.is_char_boundary(cut) {
            cut -= 1;
        }
        err.truncate(cut);
    }
    headers.insert(
        FIRST_FAILURE_HEADER.into(),
        AMQPValue::LongLongInt(first as i64),
    );
    headers.insert(LAST_ERROR_HEADER.into(), AMQPValue::LongString(err.into()));
    let (exchange, key) = if dead {
        headers.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(d.attempt as i64),
        );
        (String::new(), dlq_name(queue))
    } else {
        headers.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(next_attempt as i64),
        );
        let delay = policy.delay_before(next_attempt);
        match mode {
            RetryMode::DelayedExchange => {
                headers.insert(
                    DELAY_HEADER.into(),
                    AMQPValue::LongLongInt(delay.as_millis() as i64),
                );
                (DELAYED_EXCHANGE.to_owned(), queue.to_owned())
            }
            RetryMode::TtlLadder | RetryMode::Auto => (String::new(), ladder_queue(queue, delay)),
        }
    };
    let mut m = Message::new(&exchange, &key, d.body.clone());
    m.properties = d.properties.clone().with_headers(headers);
    m.trace = TracePropagation::Keep;
    if exchange == DELAYED_EXCHANGE {
        // A delayed exchange routes later: a mandatory publish would always come back 312.
        m = m.not_mandatory();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_ladder_and_repeat_the_last() {
        let p = RetryPolicy {
            delays: vec![Duration::from_millis(100), Duration::from_millis(300)],
            ..Default::default()
        };
        assert_eq!(p.delay_before(2), Duration::from_millis(100));
        assert_eq!(p.delay_before(3), Duration::from_millis(300));
        assert_eq!(p.delay_before(9), Duration::from_millis(300));
    }
}
