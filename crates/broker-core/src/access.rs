//! The access part: users (password hashes, tags, limits), vhost metadata
//! and limits, permissions and topic permissions — RabbitMQ's internal
//! auth backend. Owns no session or topology state: handlers combine it
//! with `Sessions` (`ops/permit.rs` for the checks, `ops/admin.rs` for the
//! management calls).
//!
//! Passwords are never hashed or compared here under the core lock: the
//! server takes an [`Arc<UserRecord>`] snapshot under the lock and calls
//! [`UserRecord::verify`] outside it (`password.rs`).

use std::sync::Arc;

use regex::Regex;
use rustc_hash::FxHashMap;

pub use crate::password::HashAlgorithm;

/// A user as stored (what a management call or the store hands in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user name.
    pub name: String,
    /// `salt ‖ digest` (RabbitMQ's `password_hash`, decoded); empty = no
    /// password (certificate login only: PLAIN always refused).
    pub password_hash: Vec<u8>,
    /// Which digest `password_hash` uses.
    pub algorithm: HashAlgorithm,
    /// Tags (administrator, monitoring, policymaker, management, impersonator, ...).
    pub tags: Vec<String>,
}

/// A vhost's metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VhostRecord {
    /// The vhost name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// `default_queue_type` ("" = classic).
    pub default_queue_type: String,
}

/// Configure / write / read regular expressions of one user in one vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionRecord {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// Regex for declare / delete.
    pub configure: String,
    /// Regex for publish / bind destination.
    pub write: String,
    /// Regex for consume / get / purge / bind source.
    pub read: String,
}

/// Topic permission of one user in one vhost on one (topic) exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPermissionRecord {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// The exchange it applies to.
    pub exchange: String,
    /// Regex on routing keys of publishes.
    pub write: String,
    /// Regex on routing keys of bindings.
    pub read: String,
}

/// A limit value: negative = unlimited (RabbitMQ's convention).
pub type Limit = i64;

/// Limits of a vhost (`set_vhost_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VhostLimits {
    /// Most connections open to the vhost at once (< 0: no limit).
    pub max_connections: Limit,
    /// Most queues in the vhost (< 0: no limit).
    pub max_queues: Limit,
}

/// Limits of a user (`set_user_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    /// Most connections of the user at once (< 0: no limit).
    pub max_connections: Limit,
    /// Most channels of the user at once, over all its connections (< 0: no limit).
    pub max_channels: Limit,
}

impl Default for VhostLimits {
    fn default() -> Self {
        VhostLimits {
            max_connections: -1,
            max_queues: -1,
        }
    }
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            max_connections: -1,
            max_channels: -1,
        }
    }
}

/// True when `count` more would exceed `limit`.
pub(crate) fn reached(limit: Limit, count: usize) -> bool {
    limit >= 0 && count as u64 >= limit as u64
}

/// The three permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Perm {
    Configure,
    Write,
    Read,
}

/// A regex as RabbitMQ matches permissions: unanchored; "" matches
/// nothing (`^$` on a name, and names are never empty here); an invalid
/// one denies.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// Matches every name: `.*` (or `^.*`, `.*$`: unanchored, they always
    /// find an empty match), the pattern of
    /// nearly every permission there is; no regex is run for it.
    Any,
    /// The compiled regex.
    Regex(Regex),
    /// Matches nothing: the regex did not compile.
    Never,
}

impl Pattern {
    pub fn new(src: &str) -> Pattern {
        if matches!(src, ".*" | "^.*" | ".*$") {
            return Pattern::Any;
        }
        let src = if src.is_empty() { "^$" } else { src };
        Regex::new(src).map_or(Pattern::Never, Pattern::Regex)
    }

    pub fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Regex(r) => r.is_match(s),
            Pattern::Never => false,
        }
    }
}

/// A permission with its regexes compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPermission {
    /// As given.
    pub record: PermissionRecord,
    /// `record.configure`, compiled.
    configure: Pattern,
    /// `record.write`, compiled.
    write: Pattern,
    /// `record.read`, compiled.
    read: Pattern,
}

impl CompiledPermission {
    pub fn new(record: PermissionRecord) -> Self {
        CompiledPermission {
            configure: Pattern::new(&record.configure),
            write: Pattern::new(&record.write),
            read: Pattern::new(&record.read),
            record,
        }
    }

    pub fn allows(&self, perm: Perm, name: &str) -> bool {
        match perm {
            Perm::Configure => self.configure.is_match(name),
            Perm::Write => self.write.is_match(name),
            Perm::Read => self.read.is_match(name),
        }
    }
}

/// A topic permission as given; its patterns are expanded per check
/// (`{username}`, `{vhost}`, `{client_id}`), so they are compiled then.
#[derive(Debug, Clone)]
pub(crate) struct TopicRule {
    /// As given.
    pub record: TopicPermissionRecord,
    /// Compiled write pattern when it has no variables to expand.
    write_fixed: Option<Pattern>,
    /// Compiled read pattern when it has no variables to expand.
    read_fixed: Option<Pattern>,
}

fn has_vars(p: &str) -> bool {
    p.contains("{username}") || p.contains("{vhost}") || p.contains("{client_id}")
}

impl TopicRule {
    pub fn new(record: TopicPermissionRecord) -> TopicRule {
        let fixed = |p: &str| (!has_vars(p)).then(|| Pattern::new(p));
        TopicRule {
            write_fixed: fixed(&record.write),
            read_fixed: fixed(&record.read),
            record,
        }
    }

    /// RabbitMQ's `check_topic_access`: the pattern (variables replaced by
    /// their regex-escaped values) must match the routing key.
    pub fn allows(&self, write: bool, routing_key: &str, user: &str, client_id: &str) -> bool {
        let (fixed, src) = if write {
            (&self.write_fixed, &self.record.write)
        } else {
            (&self.read_fixed, &self.record.read)
        };
        if let Some(p) = fixed {
            return p.is_match(routing_key);
        }
        let expanded = src
            .replace("{username}", &regex::escape(user))
            .replace("{vhost}", &regex::escape(&self.record.vhost))
            .replace("{client_id}", &regex::escape(client_id));
        Pattern::new(&expanded).is_match(routing_key)
    }
}

/// A user with its limits.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// Shared so the handshake can verify outside the lock.
    pub record: Arc<UserRecord>,
    /// Its limits.
    pub limits: UserLimits,
}

/// A vhost's metadata with its limits.
#[derive(Debug, Clone)]
pub(crate) struct VhostMeta {
    /// As given.
    pub record: VhostRecord,
    /// Its limits.
    pub limits: VhostLimits,
}

/// Users, vhost metadata, permissions. Vhost *existence* is the topology's
/// (`Topology::vhosts`); every vhost there has an entry in `vhosts` here.
pub(crate) struct Access {
    /// Users by name.
    pub users: FxHashMap<String, User>,
    /// Vhost metadata by name.
    pub vhosts: FxHashMap<String, VhostMeta>,
    /// Permissions: vhost → user → permission.
    pub permissions: FxHashMap<String, FxHashMap<String, Arc<CompiledPermission>>>,
    /// Topic permissions: vhost → user → exchange → rule.
    pub topic: FxHashMap<String, FxHashMap<String, FxHashMap<String, Arc<TopicRule>>>>,
    /// Bumped by every change of permissions or topic permissions, so
    /// per-channel caches of publish checks know they are stale.
    pub generation: u64,
    /// Users allowed to log in from loopback addresses only (`loopback_users`).
    pub loopback_users: Vec<String>,
    /// The default user, vhost and permission were created in memory and
    /// not yet written to the store (a fresh or version-1 data dir).
    pub defaults_unsaved: bool,
}

/// The default user's name (RabbitMQ's `default_user`).
pub const DEFAULT_USER: &str = "guest";

impl Default for Access {
    /// A fresh node: vhost "/", user guest/guest (administrator, full
    /// permissions on "/"), guest loopback-only.
    fn default() -> Self {
        let mut a = Access {
            users: FxHashMap::default(),
            vhosts: FxHashMap::default(),
            permissions: FxHashMap::default(),
            topic: FxHashMap::default(),
            generation: 1,
            loopback_users: vec![DEFAULT_USER.to_string()],
            defaults_unsaved: true,
        };
        a.vhosts.insert(
            "/".into(),
            VhostMeta {
                record: VhostRecord {
                    name: "/".into(),
                    description: "Default virtual host".into(),
                    ..Default::default()
                },
                limits: VhostLimits::default(),
            },
        );
        a.put_user(crate::password::default_user());
        a.put_permission(PermissionRecord {
            user: DEFAULT_USER.into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        });
        a
    }
}

impl Access {
    /// Nothing at all (recovery replaces the defaults with what is stored).
    pub fn clear(&mut self) {
        self.users.clear();
        self.vhosts.clear();
        self.permissions.clear();
        self.topic.clear();
        self.generation += 1;
        self.defaults_unsaved = false;
    }

    /// Adds or replaces a user (limits kept when replacing).
    pub fn put_user(&mut self, record: UserRecord) {
        let limits = self
            .users
            .get(&record.name)
            .map(|u| u.limits)
            .unwrap_or_default();
        self.users.insert(
            record.name.clone(),
            User {
                record: Arc::new(record),
                limits,
            },
        );
    }

    /// Removes a user with its permissions and topic permissions.
    pub fn remove_user(&mut self, name: &str) -> bool {
        let found = self.users.remove(name).is_some();
        for m in self.permissions.values_mut() {
            m.remove(name);
        }
        for m in self.topic.values_mut() {
            m.remove(name);
        }
        self.generation += 1;
        found
    }

    /// Removes a vhost's metadata, permissions and topic permissions.
    pub fn remove_vhost(&mut self, name: &str) {
        self.vhosts.remove(name);
        self.permissions.remove(name);
        self.topic.remove(name);
        self.generation += 1;
    }

    pub fn put_permission(&mut self, p: PermissionRecord) {
        self.permissions
            .entry(p.vhost.clone())
            .or_default()
            .insert(p.user.clone(), Arc::new(CompiledPermission::new(p)));
        self.generation += 1;
    }

    pub fn remove_permission(&mut self, user: &str, vhost: &str) -> bool {
        self.generation += 1;
        self.permissions
            .get_mut(vhost)
            .and_then(|m| m.remove(user))
            .is_some()
    }

    pub fn put_topic_permission(&mut self, t: TopicPermissionRecord) {
        self.topic
            .entry(t.vhost.clone())
            .or_default()
            .entry(t.user.clone())
            .or_default()
            .insert(t.exchange.clone(), Arc::new(TopicRule::new(t)));
        self.generation += 1;
    }

    /// Removes one exchange's topic permission (`exchange` Some) or all of
    /// the user's in the vhost (None).
    pub fn remove_topic_permission(&mut self, user: &str, vhost: &str, exchange: Option<&str>) {
        self.generation += 1;
        let Some(m) = self.topic.get_mut(vhost) else {
            return;
        };
        match exchange {
            Some(x) => {
                if let Some(per_user) = m.get_mut(user) {
                    per_user.remove(x);
                }
            }
            None => {
                m.remove(user);
            }
        }
    }

    /// The user's permission in a vhost, if any.
    pub fn permission(&self, user: &str, vhost: &str) -> Option<&Arc<CompiledPermission>> {
        self.permissions.get(vhost).and_then(|m| m.get(user))
    }

    /// The user's topic rule for an exchange, if any.
    pub fn topic_rule(&self, user: &str, vhost: &str, exchange: &str) -> Option<&Arc<TopicRule>> {
        self.topic
            .get(vhost)
            .and_then(|m| m.get(user))
            .and_then(|m| m.get(exchange))
    }

    /// True if `user` exists and has `tag`.
    pub fn has_tag(&self, user: &str, tag: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.record.tags.iter().any(|t| t == tag))
    }

    /// True if `user` may log in only from loopback.
    pub fn loopback_only(&self, user: &str) -> bool {
        self.loopback_users.iter().any(|u| u == user)
    }

    pub fn user_limits(&self, user: &str) -> UserLimits {
        self.users.get(user).map(|u| u.limits).unwrap_or_default()
    }

    pub fn vhost_limits(&self, vhost: &str) -> VhostLimits {
        self.vhosts.get(vhost).map(|v| v.limits).unwrap_or_default()
    }
}

impl Access {
    /// Replaces everything with a recovered state.
    pub fn install(&mut self, st: &crate::access_state::AccessState) {
        let loopback = std::mem::take(&mut self.loopback_users);
        self.clear();
        self.loopback_users = loopback;
        for u in st.users.values() {
            self.put_user(u.clone());
        }
        for v in st.vhosts.values() {
            self.vhosts.insert(
                v.name.clone(),
                VhostMeta {
                    record: v.clone(),
                    limits: VhostLimits::default(),
                },
            );
        }
        for p in st.permissions.values() {
            self.put_permission(p.clone());
        }
        for t in st.topic_permissions.values() {
            self.put_topic_permission(t.clone());
        }
        for (v, l) in &st.vhost_limits {
            if let Some(m) = self.vhosts.get_mut(v) {
                m.limits = *l;
            }
        }
        for (u, l) in &st.user_limits {
            if let Some(m) = self.users.get_mut(u) {
                m.limits = *l;
            }
        }
    }

    /// The records that write the current state to a store (the defaults
    /// of a fresh node, once a store is installed).
    pub fn records(&self) -> Vec<crate::access_state::AccessRecord> {
        use crate::access_state::AccessRecord as R;
        let mut out = vec![R::Seeded];
        for u in self.users.values() {
            out.push(R::PutUser((*u.record).clone()));
            if u.limits != UserLimits::default() {
                out.push(R::SetUserLimits(u.record.name.clone(), u.limits));
            }
        }
        for v in self.vhosts.values() {
            out.push(R::PutVhost(v.record.clone()));
            if v.limits != VhostLimits::default() {
                out.push(R::SetVhostLimits(v.record.name.clone(), v.limits));
            }
        }
        for m in self.permissions.values() {
            out.extend(m.values().map(|p| R::PutPermission(p.record.clone())));
        }
        for m in self.topic.values() {
            for per_user in m.values() {
                out.extend(
                    per_user
                        .values()
                        .map(|t| R::PutTopicPermission(t.record.clone())),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::Pattern;

    #[test]
    fn match_all_patterns_skip_the_regex_and_agree_with_it() {
        for src in [".*", "^.*", ".*$"] {
            let p = Pattern::new(src);
            assert!(matches!(p, Pattern::Any), "{src}");
            let r = regex::Regex::new(src).expect("valid");
            for name in ["", "q", "amq.gen-x", "a\nb", "ünï"] {
                assert_eq!(p.is_match(name), r.is_match(name), "{src} on {name:?}");
            }
        }
        assert!(matches!(Pattern::new("^.*$"), Pattern::Regex(_)));
        assert!(!Pattern::new("").is_match("q"));
        assert!(!Pattern::new("(").is_match("q"));
        assert!(Pattern::new("^perm-").is_match("perm-1"));
    }
}
