//! Reusing one publish's checks and routing for the next ones in a run.
//!
//! A publisher usually sends many messages in a row to the same exchange
//! and routing key, and within a run of publishes (the frames of one socket
//! read, up to the next frame that is not part of a publish) nothing can
//! change the topology or the channel's mode: every other frame and every
//! other entry point of the core first runs `run_pending_dispatch`, which
//! clears this cache, and so does any error (`raise`). So the vhost, the
//! exchange checks and the routing result of one publish hold for the next
//! ones with the same connection, channel, exchange and routing key. A
//! publish whose routing looked at its headers (a headers exchange on the
//! way) is never cached, nor is one in a transaction. The permission checks
//! (`ops/permit.rs::check_publish`, write on the exchange and topic write on
//! the routing key) are among the checks a hit skips: the cache is filled
//! only after they passed, and permissions change only through entry
//! points, which clear it.

use std::sync::Arc;

use amqp_codec::{bytes_eq, ShortStr};

use crate::ConnId;

#[derive(Default)]
pub(crate) struct PublishCache {
    valid: bool,
    conn: ConnId,
    channel: u16,
    exchange: Vec<u8>,
    routing_key: Vec<u8>,
    /// The connection's vhost.
    pub vhost: Arc<str>,
    /// The channel is in confirm mode.
    pub confirming: bool,
    /// Where messages with this exchange and routing key go.
    pub targets: Vec<ShortStr>,
    /// Publishes served from the cache since it was filled, not yet added
    /// to the exchange's and the channel's counters (`stats.rs`): they are
    /// added once per run, by `Broker::flush_publish_hits`.
    pub hits: u64,
}

/// Cached publishes to add to the counters (see `PublishCache::take_hits`).
pub(crate) struct PublishHits<'a> {
    /// The publishing connection and channel.
    pub conn: ConnId,
    pub channel: u16,
    /// The exchange's vhost and name.
    pub vhost: &'a str,
    pub exchange: &'a str,
    /// How many publishes.
    pub count: u64,
}

impl PublishCache {
    /// The uncounted cached publishes, reset to 0 (None when there are none).
    pub fn take_hits(&mut self) -> Option<PublishHits<'_>> {
        if !self.valid || self.hits == 0 {
            return None;
        }
        let count = std::mem::take(&mut self.hits);
        Some(PublishHits {
            conn: self.conn,
            channel: self.channel,
            vhost: &self.vhost,
            exchange: std::str::from_utf8(&self.exchange).unwrap_or(""),
            count,
        })
    }

    pub fn clear(&mut self) {
        if self.valid {
            self.valid = false;
            self.targets.clear();
        }
    }

    #[inline]
    pub fn hit(&self, conn: ConnId, channel: u16, exchange: &str, routing_key: &str) -> bool {
        self.valid
            && self.conn == conn
            && self.channel == channel
            && bytes_eq(&self.exchange, exchange.as_bytes())
            && bytes_eq(&self.routing_key, routing_key.as_bytes())
    }

    /// Remembers a publish that passed the checks and was routed to `targets`.
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &mut self,
        conn: ConnId,
        channel: u16,
        exchange: &str,
        routing_key: &str,
        vhost: &Arc<str>,
        confirming: bool,
        targets: &[ShortStr],
    ) {
        self.valid = true;
        self.hits = 0;
        self.conn = conn;
        self.channel = channel;
        self.exchange.clear();
        self.exchange.extend_from_slice(exchange.as_bytes());
        self.routing_key.clear();
        self.routing_key.extend_from_slice(routing_key.as_bytes());
        if !Arc::ptr_eq(&self.vhost, vhost) {
            self.vhost = vhost.clone();
        }
        self.confirming = confirming;
        self.targets.clear();
        self.targets.extend_from_slice(targets);
    }
}
