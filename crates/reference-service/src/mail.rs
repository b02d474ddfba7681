//! The simulated "mail" dependency: slow (a fixed latency per call), with a bounded number of calls
//! in flight and a rate limit (token bucket). Addresses steer failures for demos and tests:
//! a domain ending in `.invalid` is rejected for good (550), a local part with `+failN` fails
//! transiently on its first N calls.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Addresses whose `+failN` countdown is tracked at most (older ones are forgotten).
const FLAKY_TRACKED_MAX: usize = 10_000;
/// How often a call waiting for a rate token looks again.
const RATE_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Why a mail call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// Try later: rate-limited (429) or a transient failure (421).
    Transient(String),
    /// Will never succeed (550).
    Rejected(String),
}

/// Settings of the simulated dependency.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Time one call takes.
    pub latency: Duration,
    /// Calls allowed per second.
    pub rate_per_sec: u32,
    /// How long a call waits for a rate token before failing with 429.
    pub rate_wait: Duration,
}

/// Token-bucket state.
struct Bucket {
    /// Tokens available now (at most `rate_per_sec`: one second of burst).
    tokens: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
}

/// The simulated mail service.
pub struct Mail {
    /// Settings.
    cfg: MailConfig,
    /// Calls in flight.
    permits: Semaphore,
    /// The rate limit.
    bucket: Mutex<Bucket>,
    /// Remaining transient failures of `+failN` addresses.
    flaky: Mutex<HashMap<String, u32>>,
}

impl Mail {
    /// A dependency with these settings.
    pub fn new(cfg: MailConfig) -> Mail {
        Mail {
            permits: Semaphore::new(cfg.concurrency.max(1)),
            bucket: Mutex::new(Bucket {
                tokens: cfg.rate_per_sec as f64,
                refilled: Instant::now(),
            }),
            flaky: Mutex::new(HashMap::new()),
            cfg,
        }
    }

    /// Sends one welcome mail to `to` (waits for a rate token and a free slot, then the latency).
    pub async fn send(&self, to: &str) -> Result<(), MailError> {
        if to.ends_with(".invalid") {
            return Err(MailError::Rejected(format!(
                "550 mailbox unavailable: {to}"
            )));
        }
        if self.flaky_fails(to) {
            return Err(MailError::Transient(format!("421 try again later: {to}")));
        }
        self.take_token().await?;
        let _slot = self
            .permits
            .acquire()
            .await
            .map_err(|_| MailError::Transient("mail service closed".into()))?;
        tokio::time::sleep(self.cfg.latency).await;
        Ok(())
    }

    /// True if this call of a `+failN` address must fail.
    fn flaky_fails(&self, to: &str) -> bool {
        let Some(n) = to
            .split_once('@')
            .and_then(|(local, _)| local.split_once("+fail"))
            .and_then(|(_, n)| n.parse::<u32>().ok())
        else {
            return false;
        };
        let mut m = self.flaky.lock();
        if !m.contains_key(to) && m.len() >= FLAKY_TRACKED_MAX {
            m.clear();
        }
        let left = m.entry(to.to_owned()).or_insert(n);
        if *left == 0 {
            return false;
        }
        *left -= 1;
        true
    }

    async fn take_token(&self) -> Result<(), MailError> {
        let deadline = Instant::now() + self.cfg.rate_wait;
        let rate = self.cfg.rate_per_sec.max(1) as f64;
        loop {
            {
                let mut b = self.bucket.lock();
                let now = Instant::now();
                let add = now.duration_since(b.refilled).as_secs_f64() * rate;
                b.tokens = (b.tokens + add).min(rate);
                b.refilled = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return Ok(());
                }
            }
            if Instant::now() + RATE_POLL_INTERVAL > deadline {
                return Err(MailError::Transient("429 rate limited".into()));
            }
            tokio::time::sleep(RATE_POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(rate: u32, wait_ms: u64) -> Mail {
        Mail::new(MailConfig {
            concurrency: 2,
            latency: Duration::from_millis(1),
            rate_per_sec: rate,
            rate_wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn rejects_invalid_domains_and_fails_flaky_addresses_n_times() {
        let m = mail(1000, 100);
        assert!(matches!(
            m.send("a@x.invalid").await,
            Err(MailError::Rejected(_))
        ));
        assert!(matches!(
            m.send("b+fail2@x.io").await,
            Err(MailError::Transient(_))
        ));
        assert!(m.send("b+fail2@x.io").await.is_err());
        assert_eq!(m.send("b+fail2@x.io").await, Ok(()));
        assert_eq!(m.send("c@x.io").await, Ok(()));
    }

    #[tokio::test]
    async fn the_rate_limit_answers_429_when_no_token_comes_in_time() {
        let m = mail(2, 10);
        assert!(m.send("a@x.io").await.is_ok());
        assert!(m.send("a@x.io").await.is_ok());
        assert_eq!(
            m.send("a@x.io").await,
            Err(MailError::Transient("429 rate limited".into()))
        );
    }
}
