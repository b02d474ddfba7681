//! The broker side of delayed exchanges (see `delayed.rs` for the rules):
//! keeping a delayed message, firing due ones from the tick, and the
//! lifecycle of an exchange's pending messages.

use amqp_codec::{BasicProperties, Name, ShortStr};
use bytes::Bytes;

use crate::arena::{NewMessage, RecordMeta};
use crate::broker::Broker;
use crate::delayed::{
    fired_properties, hidden_queue_name, wall_ms, DelayedStore, DELAYED_FIRE_PER_TICK_MAX,
};
use crate::enqueue::Incoming;
use crate::persist::{MessageRecord, QueueDef, Seq};

/// A due message copied out of the arena to be routed.
struct Due {
    vhost: String,
    exchange: ShortStr,
    loc: crate::arena::Loc,
}

impl Broker {
    /// Keeps `m` in the delayed exchange `exchange` for `delay_ms`. Returns
    /// the store seq to wait for before confirming (0 = none) and whether
    /// the message was refused (store or arena failure).
    pub(crate) fn delay_message(
        &mut self,
        vname: &str,
        exchange: &ShortStr,
        m: &Incoming<'_>,
        persistent: bool,
        delay_ms: u64,
    ) -> (Seq, bool) {
        let copy = self.batch.republishing > 0;
        let Broker {
            topology: crate::broker::Topology { vhosts, .. },
            durability: crate::broker::Durability { persist, .. },
            arena,
            ..
        } = self;
        let Some(v) = vhosts.get_mut(Name::new(vname)) else {
            return (0, false);
        };
        let durable = v.exchanges.get(exchange).is_some_and(|e| e.durable);
        let Some(store) = v.delayed.get_mut(exchange) else {
            return (0, false);
        };
        let properties = fired_properties(m.properties, delay_ms);
        let due_ms = wall_ms().saturating_add(delay_ms);
        let (mut store_id, mut seq, mut stored_at) = (0, 0, None);
        if persistent && durable {
            let record = MessageRecord {
                exchange: m.exchange,
                routing_key: m.routing_key,
                properties: &properties,
                body: m.body,
            };
            let hidden = hidden_queue_name(exchange);
            let appended = if copy {
                persist.append_copy(vname, &record, &[hidden.as_str()], Some(due_ms))
            } else {
                persist.append(vname, &record, &[hidden.as_str()], Some(due_ms))
            };
            match appended {
                Ok(a) => (store_id, seq, stored_at) = (a.id, a.seq, a.at),
                Err(e) => {
                    tracing::warn!("store refused a delayed message: {e}");
                    return (0, true);
                }
            }
        }
        let new = NewMessage {
            meta: RecordMeta {
                published_ms: 0,
                expiration_ms: u64::MAX,
                store_id,
                persistent,
            },
            exchange: m.exchange,
            routing_key: m.routing_key,
            properties: &properties,
            body: m.body,
            stored_at,
        };
        match arena.append(&new, 1) {
            Ok(loc) => {
                store.push(due_ms, loc);
                (seq, false)
            }
            Err(e) => {
                tracing::warn!("message arena refused a delayed message: {e}");
                if store_id != 0 {
                    let _ = persist.remove_message(vname, &hidden_queue_name(exchange), store_id);
                }
                (0, true)
            }
        }
    }

    /// Routes delayed messages that are due (at most
    /// `DELAYED_FIRE_PER_TICK_MAX`; the rest wait for the next call).
    pub(crate) fn fire_delayed(&mut self, now_wall_ms: u64) {
        let mut due: Vec<Due> = Vec::new();
        for (vname, v) in self.topology.vhosts.iter_mut() {
            for (ex, store) in v.delayed.iter_mut() {
                while due.len() < DELAYED_FIRE_PER_TICK_MAX {
                    let Some(loc) = store.pop_due(now_wall_ms) else {
                        break;
                    };
                    due.push(Due {
                        vhost: vname.to_string(),
                        exchange: ex.clone(),
                        loc,
                    });
                }
            }
        }
        for d in due {
            self.fire_one(&d);
        }
    }

    fn fire_one(&mut self, d: &Due) {
        let view =
            crate::arena::full_view(self.arena.as_ref(), self.durability.persist.as_mut(), d.loc);
        let Some(view) = view else {
            return;
        };
        let (rk, props, body) = (
            view.routing_key.to_string(),
            Bytes::copy_from_slice(view.properties),
            Bytes::copy_from_slice(view.body),
        );
        let (persistent, store_id) = (view.meta.persistent, view.meta.store_id);
        let mut targets = Vec::new();
        let mut delays = Vec::new();
        if let Some(v) = self.topology.vhosts.get(d.vhost.as_str()) {
            let raw = props.clone();
            let mut h = || BasicProperties::decode(&raw).ok().and_then(|p| p.headers);
            v.route_delayed(&d.exchange, &rk, &mut h, &mut targets, &mut delays);
        }
        let m = Incoming {
            exchange: &d.exchange,
            routing_key: &rk,
            properties: &props,
            body: &body,
        };
        let mut refused = false;
        if !targets.is_empty() {
            let expiration = amqp_codec::peek_expiration(&props)
                .and_then(|e| crate::queue_args::parse_expiration(e).ok());
            self.batch.republishing += 1;
            refused |= self
                .enqueue(&d.vhost, &targets, &m, persistent, expiration)
                .store_refused;
            self.batch.republishing -= 1;
        }
        self.batch.republishing += 1;
        for (ex, delay) in delays {
            refused |= self.delay_message(&d.vhost, &ex, &m, persistent, delay).1;
        }
        self.batch.republishing -= 1;
        if refused {
            // The store refused the copy (paused on a full disk): the
            // message stays in its delayed exchange, due at once, and is
            // fired again at a later tick — never lost.
            if let Some(store) = self
                .topology
                .vhosts
                .get_mut(d.vhost.as_str())
                .and_then(|v| v.delayed.get_mut(&d.exchange))
            {
                store.push(crate::delayed::wall_ms(), d.loc);
                return;
            }
        }
        if store_id != 0 {
            let hidden = hidden_queue_name(&d.exchange);
            let _ = self
                .durability
                .persist
                .remove_message(&d.vhost, &hidden, store_id);
        }
        self.arena.release(d.loc);
    }

    /// A delayed exchange was declared: its pending-message store, and for
    /// a durable one the hidden store queue for its persistent messages.
    pub(crate) fn create_delayed(
        &mut self,
        vname: &str,
        exchange: &ShortStr,
        durable: bool,
    ) -> Result<(), crate::persist::PersistError> {
        if durable {
            self.durability.persist.put_queue(&QueueDef {
                vhost: vname.to_string(),
                name: hidden_queue_name(exchange),
                auto_delete: false,
                exclusive: false,
                arguments: vec![0, 0, 0, 0],
            })?;
        }
        if let Some(v) = self.topology.vhosts.get_mut(vname) {
            v.delayed.insert(exchange.clone(), DelayedStore::default());
        }
        Ok(())
    }

    /// A delayed exchange was deleted: its pending messages go, from the
    /// store too.
    pub(crate) fn drop_delayed(&mut self, vname: &str, exchange: &ShortStr, durable: bool) {
        let Some(mut store) = self
            .topology
            .vhosts
            .get_mut(vname)
            .and_then(|v| v.delayed.remove(exchange))
        else {
            return;
        };
        store.release_all(self.arena.as_mut());
        if durable {
            let _ = self
                .durability
                .persist
                .delete_queue(vname, &hidden_queue_name(exchange));
        }
    }
}
