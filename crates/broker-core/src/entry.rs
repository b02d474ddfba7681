//! The core's public entry points, all of them, and the one guard each
//! mutating entry passes first.
//!
//! The server (and the testkit, and the management calls to come) reaches
//! the core only through the methods in this file; every other method of
//! [`Broker`] is `pub(crate)`. Each mutating entry begins with
//! [`Broker::enter`], so the ordering rule below is kept here and nowhere
//! else. A new entry point (a management endpoint, say) is added here and
//! starts with `self.enter(Entry::Other)`.
//!
//! **The ordering rule.** A run of publishes (the frames of one socket read)
//! enqueues first and dispatches each touched queue once
//! (`Broker::defer_dispatch`), and reuses the first publish's checks and
//! routing (`publish_cache.rs`). Both are invisible to clients only if the
//! run ends before anything else can observe queues, consumers or
//! topology. So:
//! - a publish (the fast path [`Broker::publish_from_wire`], or a
//!   basic.publish method, header or body frame in [`Broker::handle_frame`])
//!   continues the run: [`Entry::Publish`];
//! - every other entry ends it first ([`Entry::Other`]): pending dispatch
//!   runs and the publish cache is cleared;
//! - so does an error ([`Broker::raise`](crate::broker)), before the channel
//!   or connection is closed: what the earlier publishes of the run deliver
//!   goes out before the close.
//!
//! [`Broker::flush`] is itself an entry, and the server calls it at the end
//! of every batch (it ends the run, emits ready confirms and hands each
//! dirty connection's output to its sink).
//!
//! Mutating entries: `open_connection`, `handle_frame`, `publish_from_wire`,
//! `send_raw`, `client_closed`, `close_connection_with`,
//! `remove_connection`, `close_all`, `flush`, `on_synced`,
//! `on_store_failed`, `on_writable`, `set_alarm`, `tick`,
//! `fire_due_delayed`, `restorer`, `set_persistence`.
//!
//! Management calls (mutating): `set_loopback_users`, `add_user`,
//! `delete_user`, `change_password_hash`, `set_user_tags`,
//! `set_user_limits`, `add_vhost`, `delete_vhost`, `set_vhost_limits`,
//! `set_permissions`, `clear_permissions`, `set_topic_permissions`,
//! `clear_topic_permissions`.
//!
//! Queries (`&self`: they change nothing, and what they read does not
//! depend on deferred dispatch): `config`, `vhost_exists`, `login_record`,
//! `admit`, `list_users`, `get_user`, `list_vhosts`, `list_permissions`,
//! `list_topic_permissions`,
//! `is_closing`, `should_pause_reading`, `sync_wanted` (read after
//! `flush`), `delayed_pending`, `next_delayed_due_ms`.

use amqp_codec::Frame;
use bytes::BytesMut;

use std::sync::Arc;

use crate::access::{
    HashAlgorithm, PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits,
    VhostRecord,
};
use crate::assembly::is_publish_part;
use crate::broker::Broker;
use crate::config::CoreConfig;
use crate::error::AmqpError;
pub use crate::ops::admin::AdminError;
use crate::params::ParamRecord;
use crate::persist::{Persistence, Seq};
use crate::recover::Restorer;
use crate::session::ConnInfo;
use crate::{ConnId, WireOutcome};

/// What an entry into the core does to the current run of publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A publish: the run goes on (dispatch stays deferred, the publish
    /// cache stays valid).
    Publish,
    /// Anything else: the run ends before the entry does its work.
    Other,
}

impl Broker {
    /// The guard every mutating entry point calls first (see the module
    /// documentation).
    #[inline]
    fn enter(&mut self, entry: Entry) {
        if entry == Entry::Other {
            self.end_run();
        }
    }

    /// Ends a run of publishes: delivers what it left pending and forgets
    /// the cached publish. Called by [`Broker::enter`] and by `raise`.
    pub(crate) fn end_run(&mut self) {
        self.flush_publish_hits();
        self.batch.publish_cache.clear();
        self.run_pending_dispatch();
    }

    // ----- mutating entries -----

    /// Registers a connection that finished its handshake.
    pub fn open_connection(&mut self, info: ConnInfo) -> ConnId {
        self.enter(Entry::Other);
        self.global.connections_opened += 1;
        self.register_connection(info)
    }

    /// Handles one frame on a channel other than 0.
    pub fn handle_frame(&mut self, conn: ConnId, frame: Frame) {
        let entry = if is_publish_part(&frame) {
            Entry::Publish
        } else {
            Entry::Other
        };
        self.enter(entry);
        self.frame(conn, frame);
    }

    /// A basic.publish read straight from the socket buffer (method, header
    /// and body frames complete in it). `NotTaken`, having done nothing,
    /// when the channel is not in a state for the fast path; the caller
    /// then takes the general frame-by-frame path.
    pub fn publish_from_wire(
        &mut self,
        conn: ConnId,
        w: &amqp_codec::WirePublish<'_>,
    ) -> WireOutcome {
        self.enter(Entry::Publish);
        self.publish_wire(conn, w)
    }

    /// The reader asks this before each frame it would hand over: true when
    /// `buf` starts with a basic.publish that the resource alarm holds back
    /// (the rule is `block_publisher`). The reader then leaves it in its
    /// buffer and reads nothing more until the alarm clears. Without an
    /// alarm this is one branch.
    #[inline]
    pub fn hold_publish(&mut self, conn: ConnId, buf: &[u8]) -> bool {
        if self.sessions.alarm.is_none() || !crate::assembly::starts_with_publish_method(buf) {
            return false;
        }
        self.enter(Entry::Other);
        self.block_publisher(conn)
    }

    /// Lets the server write channel-0 frames into a connection's output.
    pub fn send_raw(&mut self, conn: ConnId, f: impl FnOnce(&mut BytesMut)) {
        self.enter(Entry::Other);
        self.sessions.write_raw(conn, f);
    }

    /// The client sent connection.close: what its earlier frames produced
    /// (deliveries, ready confirms) goes out first, then close-ok as the
    /// last frame (nothing is delivered to a closing connection), then the
    /// connection is forgotten.
    pub fn client_closed(&mut self, conn: ConnId) {
        self.enter(Entry::Other);
        self.close_by_client(conn);
    }

    /// Sends connection.close with `err` and stops processing this connection.
    pub fn close_connection_with(&mut self, conn: ConnId, err: AmqpError) {
        self.enter(Entry::Other);
        self.close_connection(conn, err);
    }

    /// Forgets a connection: requeues its unacked messages, removes its
    /// consumers and deletes its exclusive queues.
    pub fn remove_connection(&mut self, conn: ConnId) {
        self.enter(Entry::Other);
        self.forget_connection(conn);
    }

    /// Broker shutdown: closes every connection with 320 CONNECTION_FORCED.
    pub fn close_all(&mut self, text: &str) {
        self.enter(Entry::Other);
        let ids: Vec<ConnId> = self.sessions.conns.keys().copied().collect();
        for id in ids {
            self.close_connection(
                id,
                AmqpError::new(amqp_codec::reply::CONNECTION_FORCED, text),
            );
        }
    }

    /// Passes all produced output to the connections' sinks. The server
    /// calls this after every batch, before releasing the lock.
    pub fn flush(&mut self) {
        self.enter(Entry::Other);
        self.flush_output();
    }

    /// The store has everything up to `seq` on disk: release confirms and
    /// commit-oks waiting for it.
    pub fn on_synced(&mut self, seq: Seq) {
        self.enter(Entry::Other);
        self.synced(seq);
    }

    /// The store failed: nack everything waiting for it.
    pub fn on_store_failed(&mut self) {
        self.enter(Entry::Other);
        self.store_failed();
    }

    /// The writer for `conn` drained its backlog: resume held deliveries.
    pub fn on_writable(&mut self, conn: ConnId) {
        self.enter(Entry::Other);
        self.writable(conn);
    }

    /// Raises (`Some(reason)`) or clears (`None`) the resource alarm: a
    /// connection that publishes while it is raised is blocked (see
    /// [`Broker::hold_publish`]); clearing it unblocks them.
    pub fn set_alarm(&mut self, reason: Option<String>) {
        self.enter(Entry::Other);
        self.alarm_changed(reason);
    }

    /// Periodic housekeeping, called by the server a few times a second:
    /// expires messages at the head of queues, deletes queues whose
    /// `x-expires` has passed, closes channels whose deliveries exceeded
    /// their acknowledgement timeout, fires due delayed messages.
    pub fn tick(&mut self) {
        self.enter(Entry::Other);
        self.housekeeping();
    }

    /// Routes the delayed messages due now (between ticks, when the server
    /// wakes for `next_delayed_due_ms`).
    pub fn fire_due_delayed(&mut self) {
        self.enter(Entry::Other);
        self.fire_delayed(crate::delayed::wall_ms());
    }

    /// Starts a restore; call before serving, then `Restorer::finish`.
    pub fn restorer(&mut self) -> Restorer<'_> {
        self.enter(Entry::Other);
        Restorer::new(self)
    }

    /// Installs the store once recovery has finished with it.
    pub fn set_persistence(&mut self, persist: Box<dyn Persistence>) {
        self.enter(Entry::Other);
        self.durability.persist = persist;
        self.save_default_access();
    }

    // ----- management calls (users, vhosts, permissions, limits) -----
    //
    // Each records its change in the store (buffered; durable once the
    // returned seq is synced, see `sync_wanted`) and makes it only if the
    // store took it.

    /// Sets which users may log in from loopback addresses only (config
    /// `loopback_users`; default `guest`). Not stored.
    pub fn set_loopback_users(&mut self, users: Vec<String>) {
        self.enter(Entry::Other);
        self.access.loopback_users = users;
    }

    /// Creates a user, or replaces its password hash and tags.
    pub fn add_user(&mut self, user: UserRecord) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_put_user(user)
    }

    /// Deletes a user with its permissions and limits; its connections are
    /// closed with 320 CONNECTION_FORCED.
    pub fn delete_user(&mut self, name: &str) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_delete_user(name)
    }

    /// Replaces a user's password hash (empty: no password login).
    pub fn change_password_hash(
        &mut self,
        name: &str,
        hash: Vec<u8>,
        algorithm: HashAlgorithm,
    ) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_user_mut(name, |u| {
            u.password_hash = hash;
            u.algorithm = algorithm;
        })
    }

    /// Replaces a user's tags.
    pub fn set_user_tags(&mut self, name: &str, tags: Vec<String>) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_user_mut(name, |u| u.tags = tags)
    }

    /// Sets a user's limits (negative values: no limit).
    pub fn set_user_limits(&mut self, user: &str, limits: UserLimits) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_set_user_limits(user, limits)
    }

    /// Creates a vhost (with the predeclared exchanges), or updates its
    /// description, tags and default queue type.
    pub fn add_vhost(&mut self, vhost: VhostRecord) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_put_vhost(vhost)
    }

    /// Deletes a vhost: its connections are closed with 320
    /// CONNECTION_FORCED, its queues, exchanges and bindings deleted.
    pub fn delete_vhost(&mut self, name: &str) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_delete_vhost(name)
    }

    /// Sets a vhost's limits (negative values: no limit).
    pub fn set_vhost_limits(
        &mut self,
        vhost: &str,
        limits: VhostLimits,
    ) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_set_vhost_limits(vhost, limits)
    }

    /// Sets a user's configure / write / read regexes in a vhost.
    pub fn set_permissions(&mut self, p: PermissionRecord) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_set_permissions(p)
    }

    /// Removes a user's permissions in a vhost.
    pub fn clear_permissions(&mut self, user: &str, vhost: &str) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_clear_permissions(user, vhost)
    }

    /// Sets a user's topic permission on an exchange of a vhost.
    pub fn set_topic_permissions(&mut self, t: TopicPermissionRecord) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_set_topic_permissions(t)
    }

    /// Removes a user's topic permission on one exchange, or all of them
    /// in the vhost (`exchange` None).
    pub fn clear_topic_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<Seq, AdminError> {
        self.enter(Entry::Other);
        self.admin_clear_topic_permissions(user, vhost, exchange)
    }

    // ----- management (the HTTP API; see `direct.rs`, `inspect.rs`) -----

    /// Copies what the management API shows. The server calls it every
    /// `collect_statistics_interval_ms` and publishes the result.
    pub fn snapshot(&mut self) -> crate::inspect::Snapshot {
        self.enter(Entry::Other);
        self.build_snapshot()
    }

    /// queue.declare from the API; Ok(true) when the queue was created.
    pub fn mgmt_declare_queue(
        &mut self,
        vhost: &str,
        user: &str,
        q: crate::direct::QueueSpec,
    ) -> Result<bool, AmqpError> {
        self.enter(Entry::Other);
        let name = crate::direct::short(&q.name)?;
        let existed = self.topology.queue(vhost, &q.name).is_ok();
        let m = amqp_codec::QueueDeclare {
            queue: name,
            durable: q.durable,
            auto_delete: q.auto_delete,
            arguments: q.arguments,
            ..Default::default()
        };
        self.direct_method(vhost, user, amqp_codec::Method::QueueDeclare(m))?;
        Ok(!existed)
    }

    /// queue.delete from the API.
    pub fn mgmt_delete_queue(
        &mut self,
        vhost: &str,
        user: &str,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<(), AmqpError> {
        self.enter(Entry::Other);
        self.topology.queue(vhost, name)?;
        let m = amqp_codec::QueueDelete {
            queue: crate::direct::short(name)?,
            if_unused,
            if_empty,
            ..Default::default()
        };
        self.direct_method(vhost, user, amqp_codec::Method::QueueDelete(m))
            .map(drop)
    }

    /// queue.purge from the API.
    pub fn mgmt_purge_queue(
        &mut self,
        vhost: &str,
        user: &str,
        name: &str,
    ) -> Result<(), AmqpError> {
        self.enter(Entry::Other);
        let m = amqp_codec::QueuePurge {
            queue: crate::direct::short(name)?,
            ..Default::default()
        };
        self.direct_method(vhost, user, amqp_codec::Method::QueuePurge(m))
            .map(drop)
    }

    /// exchange.declare from the API; Ok(true) when it was created.
    pub fn mgmt_declare_exchange(
        &mut self,
        vhost: &str,
        user: &str,
        x: crate::direct::ExchangeSpec,
    ) -> Result<bool, AmqpError> {
        self.enter(Entry::Other);
        let existed = self
            .topology
            .vhosts
            .get(vhost)
            .is_some_and(|v| v.exchanges.contains_key(x.name.as_str()));
        let m = amqp_codec::ExchangeDeclare {
            exchange: crate::direct::short(&x.name)?,
            kind: crate::direct::short(&x.kind)?,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: x.arguments,
            ..Default::default()
        };
        self.direct_method(vhost, user, amqp_codec::Method::ExchangeDeclare(m))?;
        Ok(!existed)
    }

    /// exchange.delete from the API.
    pub fn mgmt_delete_exchange(
        &mut self,
        vhost: &str,
        user: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<(), AmqpError> {
        self.enter(Entry::Other);
        let exists = self
            .topology
            .vhosts
            .get(vhost)
            .is_some_and(|v| v.exchanges.contains_key(name));
        if !exists {
            return Err(crate::error::no_exchange(name, vhost));
        }
        let m = amqp_codec::ExchangeDelete {
            exchange: crate::direct::short(name)?,
            if_unused,
            ..Default::default()
        };
        self.direct_method(vhost, user, amqp_codec::Method::ExchangeDelete(m))
            .map(drop)
    }

    /// queue.bind / exchange.bind (`bind`) or their unbind from the API.
    pub fn mgmt_binding(
        &mut self,
        vhost: &str,
        user: &str,
        b: crate::direct::BindingSpec,
        bind: bool,
    ) -> Result<(), AmqpError> {
        use amqp_codec::Method as M;
        self.enter(Entry::Other);
        let (src, dst) = (
            crate::direct::short(&b.source)?,
            crate::direct::short(&b.destination)?,
        );
        let rk = crate::direct::short(&b.routing_key)?;
        let args = b.arguments;
        let m = match (b.to_queue, bind) {
            (true, true) => M::QueueBind(amqp_codec::QueueBind {
                queue: dst,
                exchange: src,
                routing_key: rk,
                arguments: args,
                ..Default::default()
            }),
            (true, false) => M::QueueUnbind(amqp_codec::QueueUnbind {
                queue: dst,
                exchange: src,
                routing_key: rk,
                arguments: args,
                ..Default::default()
            }),
            (false, true) => M::ExchangeBind(amqp_codec::ExchangeBind {
                destination: dst,
                source: src,
                routing_key: rk,
                arguments: args,
                ..Default::default()
            }),
            (false, false) => M::ExchangeUnbind(amqp_codec::ExchangeUnbind {
                destination: dst,
                source: src,
                routing_key: rk,
                arguments: args,
                ..Default::default()
            }),
        };
        self.direct_method(vhost, user, m).map(drop)
    }

    /// basic.publish (mandatory) from the API; Ok(true) if it was routed.
    #[allow(clippy::too_many_arguments)]
    pub fn mgmt_publish(
        &mut self,
        vhost: &str,
        user: &str,
        exchange: &str,
        routing_key: &str,
        properties: &[u8],
        body: &[u8],
    ) -> Result<bool, AmqpError> {
        self.enter(Entry::Other);
        crate::direct::short(exchange)?;
        crate::direct::short(routing_key)?;
        let frame_max = self.config.frame_size_max_bytes;
        let p = crate::ops::publish::PublishRef::new(
            exchange,
            routing_key,
            true,
            false,
            properties,
            body,
        );
        let ((), mut out) = self.direct(vhost, user, |b, conn| {
            b.publish(conn, crate::direct::DIRECT_CHANNEL, &p)
        })?;
        Ok(!crate::direct::returned(&mut out, frame_max))
    }

    /// basic.get from the API (`POST /api/queues/{vhost}/{name}/get`).
    pub fn mgmt_get(
        &mut self,
        vhost: &str,
        user: &str,
        queue: &str,
        count: u32,
        mode: crate::direct::GetAckMode,
    ) -> Result<Vec<crate::direct::GotMessage>, AmqpError> {
        self.enter(Entry::Other);
        self.direct_get(vhost, user, queue, count, mode)
    }

    /// Stores a policy, recorded in the store: (true when it is new, the
    /// store seq to wait for). The vhost must exist.
    pub fn mgmt_set_policy(
        &mut self,
        kind: crate::params::PolicyKind,
        vhost: &str,
        name: &str,
        policy: crate::params::Policy,
    ) -> Result<(bool, Seq), AdminError> {
        self.enter(Entry::Other);
        let rec = ParamRecord::PutPolicy(kind, vhost.into(), name.into(), policy);
        self.admin_param(rec)
    }

    /// Removes a policy: (false if there was none, the store seq).
    pub fn mgmt_clear_policy(
        &mut self,
        kind: crate::params::PolicyKind,
        vhost: &str,
        name: &str,
    ) -> Result<(bool, Seq), AdminError> {
        self.enter(Entry::Other);
        self.admin_param(ParamRecord::DeletePolicy(kind, vhost.into(), name.into()))
    }

    /// Stores a runtime parameter (`value`: JSON text): (true when new,
    /// the store seq). The vhost must exist.
    pub fn mgmt_set_parameter(
        &mut self,
        component: &str,
        vhost: &str,
        name: &str,
        value: String,
    ) -> Result<(bool, Seq), AdminError> {
        self.enter(Entry::Other);
        let rec = ParamRecord::PutParameter(component.into(), vhost.into(), name.into(), value);
        self.admin_param(rec)
    }

    /// Removes a runtime parameter: (false if there was none, the store seq).
    pub fn mgmt_clear_parameter(
        &mut self,
        component: &str,
        vhost: &str,
        name: &str,
    ) -> Result<(bool, Seq), AdminError> {
        self.enter(Entry::Other);
        let rec = ParamRecord::DeleteParameter(component.into(), vhost.into(), name.into());
        self.admin_param(rec)
    }

    /// Stores a global parameter (`value`: JSON text): (true when new, the
    /// store seq).
    pub fn mgmt_set_global_parameter(
        &mut self,
        name: &str,
        value: String,
    ) -> Result<(bool, Seq), AdminError> {
        self.enter(Entry::Other);
        self.admin_param(ParamRecord::PutGlobal(name.into(), value))
    }

    /// Removes a global parameter: (false if there was none, the store seq).
    pub fn mgmt_clear_global_parameter(&mut self, name: &str) -> Result<(bool, Seq), AdminError> {
        self.enter(Entry::Other);
        self.admin_param(ParamRecord::DeleteGlobal(name.into()))
    }

    /// Closes a client connection with 320 CONNECTION_FORCED and `reason`
    /// (`DELETE /api/connections/{name}`); false if there is none.
    pub fn mgmt_close_connection(&mut self, conn: ConnId, reason: &str) -> bool {
        self.enter(Entry::Other);
        if self.sessions.conns.get(&conn).is_none_or(|c| c.internal) {
            return false;
        }
        self.close_connection(
            conn,
            AmqpError::new(amqp_codec::reply::CONNECTION_FORCED, reason),
        );
        true
    }

    // ----- queries -----

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn vhost_exists(&self, name: &str) -> bool {
        self.topology.vhosts.contains_key(name)
    }

    /// The stored record of `user` if it may log in from where it is
    /// (`loopback_users`); the caller verifies the password with
    /// [`UserRecord::verify`] after releasing the lock.
    pub fn login_record(&self, user: &str, from_loopback: bool) -> Option<Arc<UserRecord>> {
        self.login_snapshot(user, from_loopback)
    }

    /// connection.open: may `user` open a connection to `vhost` now
    /// (limits, existence, permission)? RabbitMQ's code and text if not.
    pub fn admit(&self, user: &str, vhost: &str) -> Result<(), AmqpError> {
        self.admission(user, vhost)
    }

    /// Every user with its limits.
    pub fn list_users(&self) -> Vec<(UserRecord, UserLimits)> {
        let mut v: Vec<_> = self
            .access
            .users
            .values()
            .map(|u| ((*u.record).clone(), u.limits))
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// One user with its limits.
    pub fn get_user(&self, name: &str) -> Option<(UserRecord, UserLimits)> {
        self.access
            .users
            .get(name)
            .map(|u| ((*u.record).clone(), u.limits))
    }

    /// Every vhost with its limits.
    pub fn list_vhosts(&self) -> Vec<(VhostRecord, VhostLimits)> {
        let mut v: Vec<_> = self
            .access
            .vhosts
            .values()
            .map(|m| (m.record.clone(), m.limits))
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// The runtime parameters of one component: (vhost, name, JSON text),
    /// sorted by vhost and name (the server's shovel supervisor reads the
    /// `shovel` ones).
    pub fn list_parameters(&self, component: &str) -> Vec<(String, String, String)> {
        self.params
            .parameters
            .range((component.to_string(), String::new(), String::new())..)
            .take_while(|((c, _, _), _)| c == component)
            .map(|((_, v, n), val)| (v.clone(), n.clone(), val.clone()))
            .collect()
    }

    /// Every permission (sorted by vhost, then user).
    pub fn list_permissions(&self) -> Vec<PermissionRecord> {
        let mut v: Vec<_> = self
            .access
            .permissions
            .values()
            .flat_map(|m| m.values().map(|p| p.record.clone()))
            .collect();
        v.sort_by(|a, b| (&a.vhost, &a.user).cmp(&(&b.vhost, &b.user)));
        v
    }

    /// Every topic permission (sorted by vhost, user, exchange).
    pub fn list_topic_permissions(&self) -> Vec<TopicPermissionRecord> {
        let mut v: Vec<_> = self
            .access
            .topic
            .values()
            .flat_map(|m| m.values())
            .flat_map(|m| m.values().map(|t| t.record.clone()))
            .collect();
        v.sort_by(|a, b| (&a.vhost, &a.user, &a.exchange).cmp(&(&b.vhost, &b.user, &b.exchange)));
        v
    }

    /// True once the core has sent connection.close on this connection.
    pub fn is_closing(&self, conn: ConnId) -> bool {
        self.sessions.is_closing(conn)
    }

    /// True while an alarm is raised and `conn` is a publisher: the server
    /// then stops reading its socket (as RabbitMQ blocks publishers).
    pub fn should_pause_reading(&self, conn: ConnId) -> bool {
        self.sessions.should_pause_reading(conn)
    }

    /// Store seq the core is waiting to see durable, if any.
    pub fn sync_wanted(&self) -> Option<Seq> {
        self.durability.sync_wanted()
    }

    /// Highest store seq known durable: the management API answers a
    /// write once the seq it returned is here (read only, no guard).
    pub fn synced_seq(&self) -> Seq {
        self.durability.synced_seq
    }

    /// Periodic store housekeeping (`Persistence::maintain`); the server
    /// calls it from its ticker. Touches no broker state, so no guard.
    pub fn maintain_store(&mut self) {
        self.durability.persist.maintain();
    }

    /// Pending delayed messages of an exchange (None: not a delayed one).
    pub fn delayed_pending(&self, vname: &str, exchange: &str) -> Option<usize> {
        self.topology.delayed_pending(vname, exchange)
    }

    /// Wall-clock time (ms since the epoch) of the earliest pending delayed
    /// message, so the server can wake up for it rather than wait a tick.
    pub fn next_delayed_due_ms(&self) -> Option<u64> {
        self.topology.next_delayed_due_ms()
    }
}
