//! The delivery acknowledgement timeout (RabbitMQ's `consumer_timeout`, and
//! the per-queue `x-consumer-timeout`): a channel whose oldest unacked
//! delivery is older than the timeout is closed with 406, which requeues
//! what it held.
//!
//! Cost: each unacked entry records its delivery time (read once per
//! dispatch run, not per message); a channel enters `timeout_watch` when it
//! first gets an unacked delivery under a timeout, and the tick visits only
//! those channels and only their oldest entry (a channel's deliveries are in
//! time order), as RabbitMQ's channel tick does.

use amqp_codec::ShortStr;

use crate::broker::Broker;
use crate::error::AmqpError;
use crate::ConnId;

/// The timeout for deliveries from a queue: its `x-consumer-timeout`, else
/// the server's (0 = none).
#[inline]
pub(crate) fn timeout_for(queue_ms: Option<u64>, server_ms: u64) -> Option<u64> {
    queue_ms.or((server_ms > 0).then_some(server_ms))
}

/// Lists the channel for the tick's check, once (`watched` is the
/// channel's `timeout_watched`).
#[inline]
pub(crate) fn watch(list: &mut Vec<(ConnId, u16)>, watched: &mut bool, conn: ConnId, ch_id: u16) {
    if !*watched {
        *watched = true;
        list.push((conn, ch_id));
    }
}

/// RabbitMQ 3.10's text (rabbit_channel:evaluate_consumer_timeout).
fn timed_out(ch_id: u16, timeout_ms: u64) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "delivery acknowledgement on channel {ch_id} timed out. Timeout value used: {timeout_ms} ms. This timeout value can be configured, see consumers doc guide to learn more"
    ))
}

impl Broker {
    /// Closes every watched channel whose oldest unacked delivery has waited
    /// longer than its timeout; forgets channels with nothing unacked.
    pub(crate) fn check_consumer_timeouts(&mut self, now_ms: u64) {
        if self.sessions.timeout_watch.is_empty() {
            return;
        }
        let server_ms = self.config.consumer_timeout_ms;
        let mut list = std::mem::take(&mut self.sessions.timeout_watch);
        // A channel closed and reopened under the same number can be listed
        // twice.
        list.sort_unstable();
        list.dedup();
        let mut expired: Vec<(ConnId, u16, u64)> = Vec::new();
        let Broker {
            sessions: crate::broker::Sessions { conns, .. },
            topology: crate::broker::Topology { vhosts, .. },
            ..
        } = self;
        list.retain(|&(conn, ch_id)| {
            let Some(c) = conns.get_mut(&conn) else {
                return false;
            };
            let vhost = c.info.vhost.clone();
            let Some(ch) = c.channels.get_mut(&ch_id) else {
                return false;
            };
            let Some(head) = ch.unacked.front() else {
                ch.timeout_watched = false;
                return false;
            };
            if ch.closing {
                return true;
            }
            let queue: &ShortStr = &head.queue;
            let queue_ms = vhosts
                .get(&*vhost)
                .and_then(|v| v.queues.get(queue))
                .and_then(|q| q.limits.consumer_timeout_ms);
            if let Some(t) = timeout_for(queue_ms, server_ms) {
                if head.delivered_ms != 0 && now_ms.saturating_sub(head.delivered_ms) > t {
                    expired.push((conn, ch_id, t));
                }
            }
            true
        });
        list.append(&mut self.sessions.timeout_watch);
        self.sessions.timeout_watch = list;
        for (conn, ch_id, t) in expired {
            tracing::warn!(
                conn,
                channel = ch_id,
                timeout_ms = t,
                "consumer timed out waiting for delivery acknowledgement"
            );
            self.raise(conn, ch_id, timed_out(ch_id, t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_timeout_replaces_the_server_one() {
        assert_eq!(timeout_for(None, 0), None);
        assert_eq!(timeout_for(None, 1800000), Some(1800000));
        assert_eq!(timeout_for(Some(5000), 1800000), Some(5000));
        assert_eq!(timeout_for(Some(5000), 0), Some(5000));
    }

    #[test]
    fn text_is_rabbitmqs() {
        let e = timed_out(3, 2000);
        assert_eq!(e.code, 406);
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - delivery acknowledgement on channel 3 timed out. Timeout value used: 2000 ms. This timeout value can be configured, see consumers doc guide to learn more"
        );
        assert_eq!((e.class_id, e.method_id), (0, 0));
    }
}
