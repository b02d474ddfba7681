//! Policies, operator policies, runtime parameters and global parameters,
//! as the management API stores them. Kept verbatim (definitions and
//! values are the API's JSON text, opaque here); their effect on queues
//! and exchanges is not applied yet, and they are not yet durable (both
//! come with the policy work that follows issue 10).

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

/// Everything stored, keyed so listings come out sorted.
#[derive(Debug, Clone, Default)]
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
}
