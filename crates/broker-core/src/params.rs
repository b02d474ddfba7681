//! Policies, operator policies, runtime parameters and global parameters,
//! as the management API stores them. Kept verbatim (definitions and
//! values are the API's JSON text, opaque here); their effect on queues
//! and exchanges is not applied yet (the policy work that follows issue
//! 10). Durable: every change is a [`ParamRecord`] inside an access record
//! of `defs.log`, and [`Params::apply`] is the one place a change is made,
//! for the live state and for the store's fold alike.

use std::collections::BTreeMap;

/// A policy or an operator policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Regular expression on object names.
    pub pattern: String,
    /// `queues`, `classic_queues`, `quorum_queues`, `streams`, `exchanges`, `all`.
    pub apply_to: String,
    /// Higher wins.
    pub priority: i64,
    /// The definition object, as JSON text.
    pub definition: String,
}

/// Which policy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `/api/policies`.
    User,
    /// `/api/operator-policies`.
    Operator,
}

/// One durable change of the stored policies and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamRecord {
    /// Adds or replaces a policy (kind, vhost, name, policy).
    PutPolicy(PolicyKind, String, String, Policy),
    /// Removes a policy (kind, vhost, name).
    DeletePolicy(PolicyKind, String, String),
    /// Adds or replaces a runtime parameter (component, vhost, name, JSON value).
    PutParameter(String, String, String, String),
    /// Removes a runtime parameter (component, vhost, name).
    DeleteParameter(String, String, String),
    /// Adds or replaces a global parameter (name, JSON value).
    PutGlobal(String, String),
    /// Removes a global parameter (name).
    DeleteGlobal(String),
}

/// Everything stored, keyed so listings come out sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Policies by (vhost, name).
    pub policies: BTreeMap<(String, String), Policy>,
    /// Operator policies by (vhost, name).
    pub operator_policies: BTreeMap<(String, String), Policy>,
    /// Runtime parameters by (component, vhost, name): JSON text.
    pub parameters: BTreeMap<(String, String, String), String>,
    /// Global parameters by name: JSON text.
    pub global: BTreeMap<String, String>,
}

impl Params {
    /// The table of `kind`.
    pub fn policies_mut(&mut self, kind: PolicyKind) -> &mut BTreeMap<(String, String), Policy> {
        match kind {
            PolicyKind::User => &mut self.policies,
            PolicyKind::Operator => &mut self.operator_policies,
        }
    }

    /// Whether `rec` changes anything: a put always does, a delete only
    /// of something stored (a delete of nothing is not recorded).
    pub fn changes(&self, rec: &ParamRecord) -> bool {
        match rec {
            ParamRecord::DeletePolicy(kind, v, n) => {
                let table = match kind {
                    PolicyKind::User => &self.policies,
                    PolicyKind::Operator => &self.operator_policies,
                };
                table.contains_key(&(v.clone(), n.clone()))
            }
            ParamRecord::DeleteParameter(c, v, n) => {
                self.parameters
                    .contains_key(&(c.clone(), v.clone(), n.clone()))
            }
            ParamRecord::DeleteGlobal(n) => self.global.contains_key(n),
            _ => true,
        }
    }

    /// Applies one change. Returns true when a put created the entry or a
    /// delete removed one (false: a put replaced, a delete found nothing).
    pub fn apply(&mut self, rec: ParamRecord) -> bool {
        match rec {
            ParamRecord::PutPolicy(kind, v, n, p) => {
                self.policies_mut(kind).insert((v, n), p).is_none()
            }
            ParamRecord::DeletePolicy(kind, v, n) => {
                self.policies_mut(kind).remove(&(v, n)).is_some()
            }
            ParamRecord::PutParameter(c, v, n, val) => {
                self.parameters.insert((c, v, n), val).is_none()
            }
            ParamRecord::DeleteParameter(c, v, n) => self.parameters.remove(&(c, v, n)).is_some(),
            ParamRecord::PutGlobal(n, val) => self.global.insert(n, val).is_none(),
            ParamRecord::DeleteGlobal(n) => self.global.remove(&n).is_some(),
        }
    }

    /// Drops a deleted vhost's policies and parameters (as RabbitMQ does).
    pub fn remove_vhost(&mut self, vhost: &str) {
        self.policies.retain(|(v, _), _| v != vhost);
        self.operator_policies.retain(|(v, _), _| v != vhost);
        self.parameters.retain(|(_, v, _), _| v != vhost);
    }

    /// The records that rebuild this state (for a compact log).
    pub fn records(&self) -> impl Iterator<Item = ParamRecord> + '_ {
        let policies = |kind: PolicyKind, t: &'_ BTreeMap<(String, String), Policy>| {
            t.iter()
                .map(move |((v, n), p)| {
                    ParamRecord::PutPolicy(kind, v.clone(), n.clone(), p.clone())
                })
                .collect::<Vec<_>>()
        };
        policies(PolicyKind::User, &self.policies)
            .into_iter()
            .chain(policies(PolicyKind::Operator, &self.operator_policies))
            .chain(self.parameters.iter().map(|((c, v, n), val)| {
                ParamRecord::PutParameter(c.clone(), v.clone(), n.clone(), val.clone())
            }))
            .chain(
                self.global
                    .iter()
                    .map(|(n, val)| ParamRecord::PutGlobal(n.clone(), val.clone())),
            )
    }
}
