//! Connection settings and the reconnect backoff.

use std::time::Duration;

/// Jittered exponential backoff between reconnect attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier: 2.0,
        }
    }
}

/// Exponent cap: beyond this many attempts the delay is `max` anyway.
const BACKOFF_EXPONENT_MAX: i32 = 30;

impl Backoff {
    /// Delay before retry number `attempt` (0-based): `initial * multiplier^attempt`, capped at `max`,
    /// then scaled by a random factor in [0.5, 1.0) so that many clients do not reconnect in lock-step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = (attempt as i32).min(BACKOFF_EXPONENT_MAX);
        let base = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = base.min(self.max.as_secs_f64());
        Duration::from_secs_f64(capped * (0.5 + fastrand::f64() * 0.5))
    }
}

/// How the kit connects.
#[derive(Debug, Clone)]
pub struct KitConfig {
    /// `amqp://` or `amqps://` (TLS) URI, or `warren-embedded://[user:pass@]NAME[/vhost]` for a
    /// broker inside this process (crate `warren-embedded`, feature `embedded`).
    pub url: String,
    /// Heartbeat interval to ask for, seconds (0 = off).
    pub heartbeat_secs: u16,
    /// Backoff between reconnect attempts.
    pub backoff: Backoff,
    /// Name shown by the broker's management for the connections (suffixed `.publish` / `.consume`).
    pub connection_name: String,
    /// Use one connection for publishing and consuming (off by default: a blocked publisher would stall acks).
    pub shared_connection: bool,
}

impl KitConfig {
    /// Defaults for `url`: 10 s heartbeats, 200 ms → 30 s backoff, separate publish/consume connections.
    pub fn new(url: impl Into<String>) -> KitConfig {
        KitConfig {
            url: url.into(),
            heartbeat_secs: 10,
            backoff: Backoff::default(),
            connection_name: "service-kit".into(),
            shared_connection: false,
        }
    }

    /// Sets the backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> KitConfig {
        self.backoff.initial = initial;
        self.backoff.max = max;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
        };
        for _ in 0..100 {
            let d0 = b.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 < Duration::from_millis(100));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 < Duration::from_millis(800));
            let d20 = b.delay(20);
            assert!(d20 >= Duration::from_millis(500) && d20 < Duration::from_secs(1));
        }
        let distinct: std::collections::HashSet<_> = (0..20).map(|_| b.delay(2)).collect();
        assert!(distinct.len() > 1, "delays are jittered");
    }
}
