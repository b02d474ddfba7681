//! Management calls (users, vhosts, permissions, limits, policies and
//! parameters) and connection
//! admission: they combine the access part with the topology (a vhost's
//! exchanges and queues), the sessions (its connections, limits) and the
//! store (every change is recorded). Entry points are in `entry.rs`.

use std::sync::Arc;

use amqp_codec::ShortStr;

use crate::access::{
    reached, PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits,
    VhostMeta, VhostRecord,
};
use crate::access_state::{AccessRecord, AccessState};
use crate::broker::Broker;
use crate::error::{vhost_refused, AmqpError};
use crate::params::ParamRecord;
use crate::persist::Seq;
use crate::vhost::Vhost;

/// Why a management call did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// No such user (name).
    NoUser(String),
    /// No such vhost (name).
    NoVhost(String),
    /// A value is not acceptable (why).
    Invalid(String),
    /// The store refused the record (why); nothing was changed.
    Store(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::NoUser(u) => write!(f, "no such user: {u}"),
            AdminError::NoVhost(v) => write!(f, "no such vhost: {v}"),
            AdminError::Invalid(why) => write!(f, "{why}"),
            AdminError::Store(why) => write!(f, "store error: {why}"),
        }
    }
}

/// Names longer than an AMQP short string cannot be used by any client.
fn check_name(what: &str, name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name.len() > 255 {
        return Err(AdminError::Invalid(format!(
            "{what} name must be 1 to 255 bytes long"
        )));
    }
    Ok(())
}

fn check_regex(r: &str) -> Result<(), AdminError> {
    regex::Regex::new(r)
        .map(|_| ())
        .map_err(|e| AdminError::Invalid(format!("invalid regular expression '{r}': {e}")))
}

impl Broker {
    /// Writes one access record; the change is made only if this succeeds.
    fn record_access(&mut self, rec: &AccessRecord) -> Result<Seq, AdminError> {
        self.durability
            .persist
            .put_access(rec)
            .map_err(|e| AdminError::Store(e.to_string()))
    }

    /// Recovery: the stored access state, or (none stored: a fresh or
    /// version-1 data dir) the defaults, written once a store is installed.
    pub(crate) fn restore_access(&mut self, st: &AccessState) {
        if !st.seeded {
            self.access.defaults_unsaved = true;
            return;
        }
        self.access.install(st);
        self.params = st.params.clone();
        // "/" exists on a fresh node only; a stored state names them all.
        self.topology
            .vhosts
            .retain(|k, _| st.vhosts.contains_key(&**k));
        for name in st.vhosts.keys() {
            self.topology
                .vhosts
                .entry(name.as_str().into())
                .or_insert_with(Vhost::new);
        }
    }

    /// Writes the in-memory defaults to a newly installed store if they
    /// were never stored.
    pub(crate) fn save_default_access(&mut self) {
        if !self.access.defaults_unsaved {
            return;
        }
        // Vhosts that only recovered exchanges named (a version-1 store).
        let names: Vec<String> = self.topology.vhosts.keys().map(|k| k.to_string()).collect();
        for name in names {
            self.access.vhosts.entry(name.clone()).or_insert(VhostMeta {
                record: VhostRecord {
                    name,
                    ..Default::default()
                },
                limits: VhostLimits::default(),
            });
        }
        let mut ok = true;
        for rec in self.access.records() {
            ok &= self.durability.persist.put_access(&rec).is_ok();
        }
        self.access.defaults_unsaved = !ok;
    }

    // ----- policies and parameters -----

    /// Records and applies one change of the policies or parameters:
    /// (whether it created or removed an entry, its store seq). A put
    /// needs its vhost; a delete of nothing records nothing (seq 0, which
    /// is always durable).
    pub(crate) fn admin_param(&mut self, rec: ParamRecord) -> Result<(bool, Seq), AdminError> {
        let vhost = match &rec {
            ParamRecord::PutPolicy(_, v, _, _) | ParamRecord::PutParameter(_, v, _, _) => Some(v),
            _ => None,
        };
        if let Some(v) = vhost.filter(|v| !self.topology.vhosts.contains_key(v.as_str())) {
            return Err(AdminError::NoVhost(v.clone()));
        }
        if !self.params.changes(&rec) {
            return Ok((false, 0));
        }
        let seq = self.record_access(&AccessRecord::Param(rec.clone()))?;
        Ok((self.params.apply(rec), seq))
    }

    // ----- connection admission (connection.open) -----

    /// RabbitMQ's connection.open checks, in its order: the vhost's
    /// connection limit, the user's, the vhost's existence, the user's
    /// permission in it.
    pub(crate) fn admission(&self, user: &str, vhost: &str) -> Result<(), AmqpError> {
        let vl = self.access.vhost_limits(vhost).max_connections;
        if reached(vl, self.sessions.vhost_connections(vhost)) {
            return Err(AmqpError::not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{user}': connection limit ({vl}) is reached"
            )));
        }
        let ul = self.access.user_limits(user).max_connections;
        if reached(ul, self.sessions.user_connections(user)) {
            return Err(AmqpError::not_allowed(format!(
                "connection refused for user '{user}': user connection limit ({ul}) is reached"
            )));
        }
        if !self.topology.vhosts.contains_key(vhost) {
            return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")));
        }
        if self.access.permission(user, vhost).is_none() {
            return Err(vhost_refused(vhost, user));
        }
        Ok(())
    }

    /// The user's channel limit, checked at channel.open.
    pub(crate) fn check_channel_limit(&self, user: &str) -> Result<(), AmqpError> {
        let limit = self.access.user_limits(user).max_channels;
        if limit >= 0 && reached(limit, self.sessions.user_channels(user)) {
            return Err(AmqpError::not_allowed(format!(
                "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
            )));
        }
        Ok(())
    }

    /// The stored record of `user` for a login from loopback or not
    /// (verified by the caller, outside the lock).
    pub(crate) fn login_snapshot(
        &self,
        user: &str,
        from_loopback: bool,
    ) -> Option<Arc<UserRecord>> {
        let u = self.access.users.get(user)?;
        if !from_loopback && self.access.loopback_only(user) {
            return None;
        }
        Some(u.record.clone())
    }

    // ----- users -----

    pub(crate) fn admin_put_user(&mut self, rec: UserRecord) -> Result<Seq, AdminError> {
        check_name("user", &rec.name)?;
        let seq = self.record_access(&AccessRecord::PutUser(rec.clone()))?;
        self.access.put_user(rec);
        Ok(seq)
    }

    pub(crate) fn admin_user_mut(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut UserRecord),
    ) -> Result<Seq, AdminError> {
        let u = self
            .access
            .users
            .get(name)
            .ok_or_else(|| AdminError::NoUser(name.to_string()))?;
        let mut rec = (*u.record).clone();
        f(&mut rec);
        self.admin_put_user(rec)
    }

    pub(crate) fn admin_delete_user(&mut self, name: &str) -> Result<Seq, AdminError> {
        if !self.access.users.contains_key(name) {
            return Err(AdminError::NoUser(name.to_string()));
        }
        let seq = self.record_access(&AccessRecord::DeleteUser(name.to_string()))?;
        self.access.remove_user(name);
        // As RabbitMQ's connection tracking does on `user_deleted`.
        let conns = self.sessions.by_user.get(name).cloned().unwrap_or_default();
        let text = format!("user '{name}' is deleted");
        for id in conns {
            self.close_connection(
                id,
                AmqpError::new(amqp_codec::reply::CONNECTION_FORCED, &text),
            );
        }
        Ok(seq)
    }

    pub(crate) fn admin_set_user_limits(
        &mut self,
        user: &str,
        limits: UserLimits,
    ) -> Result<Seq, AdminError> {
        if !self.access.users.contains_key(user) {
            return Err(AdminError::NoUser(user.to_string()));
        }
        let seq = self.record_access(&AccessRecord::SetUserLimits(user.to_string(), limits))?;
        if let Some(u) = self.access.users.get_mut(user) {
            u.limits = limits;
        }
        Ok(seq)
    }

    // ----- vhosts -----

    pub(crate) fn admin_put_vhost(&mut self, rec: VhostRecord) -> Result<Seq, AdminError> {
        check_name("vhost", &rec.name)?;
        let seq = self.record_access(&AccessRecord::PutVhost(rec.clone()))?;
        self.topology
            .vhosts
            .entry(rec.name.as_str().into())
            .or_insert_with(Vhost::new);
        let limits = self.access.vhost_limits(&rec.name);
        self.access.vhosts.insert(
            rec.name.clone(),
            VhostMeta {
                record: rec,
                limits,
            },
        );
        Ok(seq)
    }

    /// Deletes a vhost: closes its connections with 320 CONNECTION_FORCED,
    /// deletes its queues (with their messages) and exchanges (with their
    /// bindings), then its permissions and limits.
    pub(crate) fn admin_delete_vhost(&mut self, name: &str) -> Result<Seq, AdminError> {
        if !self.topology.vhosts.contains_key(name) {
            return Err(AdminError::NoVhost(name.to_string()));
        }
        let seq = self.record_access(&AccessRecord::DeleteVhost(name.to_string()))?;
        let conns = self
            .sessions
            .by_vhost
            .get(name)
            .cloned()
            .unwrap_or_default();
        let text = format!("vhost '{name}' is deleted");
        for id in conns {
            self.close_connection(
                id,
                AmqpError::new(amqp_codec::reply::CONNECTION_FORCED, &text),
            );
        }
        let (queues, exchanges): (Vec<ShortStr>, Vec<ShortStr>) =
            match self.topology.vhosts.get(name) {
                Some(v) => (
                    v.queues.keys().cloned().collect(),
                    v.exchanges.keys().cloned().collect(),
                ),
                None => Default::default(),
            };
        for q in &queues {
            self.delete_queue_internal(name, q);
        }
        for x in exchanges.iter().filter(|x| !x.is_empty()) {
            self.delete_exchange_internal(name, x);
        }
        self.topology.vhosts.remove(name);
        self.access.remove_vhost(name);
        self.params.remove_vhost(name);
        Ok(seq)
    }

    pub(crate) fn admin_set_vhost_limits(
        &mut self,
        vhost: &str,
        limits: VhostLimits,
    ) -> Result<Seq, AdminError> {
        if !self.access.vhosts.contains_key(vhost) {
            return Err(AdminError::NoVhost(vhost.to_string()));
        }
        let seq = self.record_access(&AccessRecord::SetVhostLimits(vhost.to_string(), limits))?;
        if let Some(v) = self.access.vhosts.get_mut(vhost) {
            v.limits = limits;
        }
        Ok(seq)
    }

    // ----- permissions -----

    fn user_and_vhost_exist(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if !self.access.users.contains_key(user) {
            return Err(AdminError::NoUser(user.to_string()));
        }
        if !self.topology.vhosts.contains_key(vhost) {
            return Err(AdminError::NoVhost(vhost.to_string()));
        }
        Ok(())
    }

    pub(crate) fn admin_set_permissions(&mut self, p: PermissionRecord) -> Result<Seq, AdminError> {
        self.user_and_vhost_exist(&p.user, &p.vhost)?;
        for r in [&p.configure, &p.write, &p.read] {
            check_regex(r)?;
        }
        let seq = self.record_access(&AccessRecord::PutPermission(p.clone()))?;
        self.access.put_permission(p);
        Ok(seq)
    }

    pub(crate) fn admin_clear_permissions(
        &mut self,
        user: &str,
        vhost: &str,
    ) -> Result<Seq, AdminError> {
        self.user_and_vhost_exist(user, vhost)?;
        let seq = self.record_access(&AccessRecord::DeletePermission(
            user.to_string(),
            vhost.to_string(),
        ))?;
        self.access.remove_permission(user, vhost);
        Ok(seq)
    }

    pub(crate) fn admin_set_topic_permissions(
        &mut self,
        t: TopicPermissionRecord,
    ) -> Result<Seq, AdminError> {
        self.user_and_vhost_exist(&t.user, &t.vhost)?;
        for r in [&t.write, &t.read] {
            // Variables are replaced by escaped text: check with a stand-in.
            check_regex(
                &r.replace("{username}", "u")
                    .replace("{vhost}", "v")
                    .replace("{client_id}", "c"),
            )?;
        }
        let seq = self.record_access(&AccessRecord::PutTopicPermission(t.clone()))?;
        self.access.put_topic_permission(t);
        Ok(seq)
    }

    /// Clears one exchange's topic permission, or all of the user's in the
    /// vhost (`exchange` None).
    pub(crate) fn admin_clear_topic_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<Seq, AdminError> {
        self.user_and_vhost_exist(user, vhost)?;
        let exchanges: Vec<String> = match exchange {
            Some(x) => vec![x.to_string()],
            None => self
                .access
                .topic
                .get(vhost)
                .and_then(|m| m.get(user))
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        };
        let mut seq = self.durability.persist.last_seq();
        for x in exchanges {
            seq = self.record_access(&AccessRecord::DeleteTopicPermission(
                user.to_string(),
                vhost.to_string(),
                x.clone(),
            ))?;
            self.access
                .remove_topic_permission(user, vhost, Some(x.as_str()));
        }
        Ok(seq)
    }
}
