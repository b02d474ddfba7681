//! Users, vhosts, permissions, limits, policies and parameters as durable
//! records, and the one
//! fold of those records into a state. The store folds its log with it
//! (to compact `defs.log`) and the core installs the folded state at
//! recovery, so what a deletion removes is decided here only.

use std::collections::BTreeMap;

use crate::access::{
    PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits, VhostRecord,
};
use crate::params::{ParamRecord, Params};

/// One change to the access state, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRecord {
    /// The store holds the access state (written before any other access
    /// record): without it, recovery creates the default user and vhost.
    Seeded,
    /// Adds or replaces a user.
    PutUser(UserRecord),
    /// Removes a user with its permissions, topic permissions and limits.
    DeleteUser(String),
    /// Adds or replaces a vhost's metadata.
    PutVhost(VhostRecord),
    /// Removes a vhost with its permissions, topic permissions and limits.
    DeleteVhost(String),
    /// Sets a user's permissions in a vhost.
    PutPermission(PermissionRecord),
    /// Clears a user's permissions in a vhost (user, vhost).
    DeletePermission(String, String),
    /// Sets a topic permission.
    PutTopicPermission(TopicPermissionRecord),
    /// Clears a topic permission (user, vhost, exchange).
    DeleteTopicPermission(String, String, String),
    /// Sets a vhost's limits.
    SetVhostLimits(String, VhostLimits),
    /// Sets a user's limits.
    SetUserLimits(String, UserLimits),
    /// A change of the policies, operator policies or parameters
    /// (format version 3).
    Param(ParamRecord),
}

/// The folded access state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessState {
    /// A `Seeded` record was seen.
    pub seeded: bool,
    /// Users by name.
    pub users: BTreeMap<String, UserRecord>,
    /// Vhosts by name.
    pub vhosts: BTreeMap<String, VhostRecord>,
    /// Permissions by (user, vhost).
    pub permissions: BTreeMap<(String, String), PermissionRecord>,
    /// Topic permissions by (user, vhost, exchange).
    pub topic_permissions: BTreeMap<(String, String, String), TopicPermissionRecord>,
    /// Vhost limits by vhost.
    pub vhost_limits: BTreeMap<String, VhostLimits>,
    /// User limits by user.
    pub user_limits: BTreeMap<String, UserLimits>,
    /// Policies, operator policies, parameters and global parameters.
    pub params: Params,
}

impl AccessState {
    /// Applies one record.
    pub fn apply(&mut self, rec: AccessRecord) {
        match rec {
            AccessRecord::Seeded => self.seeded = true,
            AccessRecord::PutUser(u) => {
                self.users.insert(u.name.clone(), u);
            }
            AccessRecord::DeleteUser(name) => {
                self.users.remove(&name);
                self.permissions.retain(|(u, _), _| *u != name);
                self.topic_permissions.retain(|(u, _, _), _| *u != name);
                self.user_limits.remove(&name);
            }
            AccessRecord::PutVhost(v) => {
                self.vhosts.insert(v.name.clone(), v);
            }
            AccessRecord::DeleteVhost(name) => {
                self.vhosts.remove(&name);
                self.permissions.retain(|(_, v), _| *v != name);
                self.topic_permissions.retain(|(_, v, _), _| *v != name);
                self.vhost_limits.remove(&name);
                self.params.remove_vhost(&name);
            }
            AccessRecord::PutPermission(p) => {
                self.permissions
                    .insert((p.user.clone(), p.vhost.clone()), p);
            }
            AccessRecord::DeletePermission(u, v) => {
                self.permissions.remove(&(u, v));
            }
            AccessRecord::PutTopicPermission(t) => {
                self.topic_permissions
                    .insert((t.user.clone(), t.vhost.clone(), t.exchange.clone()), t);
            }
            AccessRecord::DeleteTopicPermission(u, v, x) => {
                self.topic_permissions.remove(&(u, v, x));
            }
            AccessRecord::SetVhostLimits(v, l) => {
                self.vhost_limits.insert(v, l);
            }
            AccessRecord::SetUserLimits(u, l) => {
                self.user_limits.insert(u, l);
            }
            AccessRecord::Param(p) => {
                self.params.apply(p);
            }
        }
    }

    /// The records that rebuild this state (for a compact log).
    pub fn records(&self) -> Vec<AccessRecord> {
        let mut out = Vec::new();
        if !self.seeded {
            return out;
        }
        out.push(AccessRecord::Seeded);
        out.extend(self.users.values().cloned().map(AccessRecord::PutUser));
        out.extend(self.vhosts.values().cloned().map(AccessRecord::PutVhost));
        out.extend(
            self.permissions
                .values()
                .cloned()
                .map(AccessRecord::PutPermission),
        );
        out.extend(
            self.topic_permissions
                .values()
                .cloned()
                .map(AccessRecord::PutTopicPermission),
        );
        out.extend(
            self.vhost_limits
                .iter()
                .map(|(v, l)| AccessRecord::SetVhostLimits(v.clone(), *l)),
        );
        out.extend(
            self.user_limits
                .iter()
                .map(|(u, l)| AccessRecord::SetUserLimits(u.clone(), *l)),
        );
        out.extend(self.params.records().map(AccessRecord::Param));
        out
    }
}
