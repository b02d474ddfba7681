//! The periodic tick (`Broker::tick`): message expiry at queue heads,
//! idle queues (`x-expires`), acknowledgement timeouts, due delayed
//! messages, arena maintenance. Visits only queues on a vhost's
//! `timed_queues` list and watched channels.

use amqp_codec::ShortStr;

use crate::broker::Broker;
use crate::message::{now_ms, QueuedMessage};

impl Broker {
    /// Periodic housekeeping, called by the server a few times a second:
    /// expires messages at the head of queues, deletes queues whose
    /// `x-expires` has passed, and closes channels whose deliveries exceeded
    /// their acknowledgement timeout.
    pub(crate) fn housekeeping(&mut self) {
        let now = now_ms();
        let mut expired: Vec<(String, ShortStr, QueuedMessage)> = Vec::new();
        let mut idle: Vec<(String, ShortStr)> = Vec::new();
        for (vname, v) in self.topology.vhosts.iter_mut() {
            // Only queues with TTLs or x-expires are on this list.
            let mut i = 0;
            while i < v.timed_queues.len() {
                let name = &v.timed_queues[i];
                let Some(q) = v.queues.get_mut(name).filter(|q| q.needs_tick()) else {
                    if let Some(q) = v.queues.get_mut(name) {
                        q.timed = false;
                    }
                    v.timed_queues.swap_remove(i);
                    continue;
                };
                let persist = &self.durability.persist;
                if !q.holds_expired(|| persist.refuses_messages()) {
                    while let Some(m) = q.pop_expired(now, false, self.arena.as_ref()) {
                        expired.push((vname.to_string(), name.clone(), m));
                    }
                }
                if let Some(ttl) = q.limits.expires_ms {
                    if q.consumers.is_empty() && now.saturating_sub(q.last_used_ms) >= ttl {
                        idle.push((vname.to_string(), name.clone()));
                    }
                }
                i += 1;
            }
        }
        for (v, q, m) in expired {
            self.dead_letter(&v, &q, m, "expired");
        }
        for (v, q) in idle {
            self.delete_queue_internal(&v, &q);
        }
        self.check_consumer_timeouts(now);
        self.fire_delayed(crate::delayed::wall_ms());
        self.arena.maintain();
    }
}
