//! Users, vhosts, permissions and limits in `defs.log` (format version 2),
//! and policies, operator policies, parameters and global parameters
//! (kinds 12 to 17, format version 3): one record type, [`T_ACCESS`],
//! whose first field is the kind of change.
//! Layout after the type byte: kind u8, then the kind's fields (strings
//! and byte fields `u32 length + bytes`, lists `u32 count + strings`,
//! limits i64 little-endian). See `docs/storage.md`.

use broker_core::access::{
    HashAlgorithm, PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits,
    VhostRecord,
};
use broker_core::access_state::AccessRecord;
use broker_core::params::{ParamRecord, Policy, PolicyKind};

use crate::record::{put_bytes, Reader};

/// Record type of an access change (format version 2).
pub const T_ACCESS: u8 = 8;

const K_SEEDED: u8 = 1;
const K_PUT_USER: u8 = 2;
const K_DELETE_USER: u8 = 3;
const K_PUT_VHOST: u8 = 4;
const K_DELETE_VHOST: u8 = 5;
const K_PUT_PERMISSION: u8 = 6;
const K_DELETE_PERMISSION: u8 = 7;
const K_PUT_TOPIC_PERMISSION: u8 = 8;
const K_DELETE_TOPIC_PERMISSION: u8 = 9;
const K_VHOST_LIMITS: u8 = 10;
const K_USER_LIMITS: u8 = 11;
// Format version 3.
const K_PUT_POLICY: u8 = 12;
const K_DELETE_POLICY: u8 = 13;
const K_PUT_PARAMETER: u8 = 14;
const K_DELETE_PARAMETER: u8 = 15;
const K_PUT_GLOBAL: u8 = 16;
const K_DELETE_GLOBAL: u8 = 17;

/// Policy tables: 0 policies, 1 operator policies.
fn policy_kind_byte(k: PolicyKind) -> u8 {
    match k {
        PolicyKind::User => 0,
        PolicyKind::Operator => 1,
    }
}

fn policy_kind_of(b: u8) -> Option<PolicyKind> {
    match b {
        0 => Some(PolicyKind::User),
        1 => Some(PolicyKind::Operator),
        _ => None,
    }
}

/// Most entries a stored list (tags) may have; a longer count is damage.
const LIST_ENTRIES_MAX: u32 = 4096;

fn algorithm_byte(a: HashAlgorithm) -> u8 {
    match a {
        HashAlgorithm::Sha256 => 0,
        HashAlgorithm::Sha512 => 1,
        HashAlgorithm::Md5 => 2,
    }
}

fn algorithm_of(b: u8) -> Option<HashAlgorithm> {
    match b {
        0 => Some(HashAlgorithm::Sha256),
        1 => Some(HashAlgorithm::Sha512),
        2 => Some(HashAlgorithm::Md5),
        _ => None,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_list(out: &mut Vec<u8>, l: &[String]) {
    out.extend_from_slice(&(l.len() as u32).to_le_bytes());
    for s in l {
        put_str(out, s);
    }
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn encode_access(out: &mut Vec<u8>, rec: &AccessRecord) {
    out.push(T_ACCESS);
    match rec {
        AccessRecord::Seeded => out.push(K_SEEDED),
        AccessRecord::PutUser(u) => {
            out.push(K_PUT_USER);
            put_str(out, &u.name);
            out.push(algorithm_byte(u.algorithm));
            put_bytes(out, &u.password_hash);
            put_list(out, &u.tags);
        }
        AccessRecord::DeleteUser(n) => {
            out.push(K_DELETE_USER);
            put_str(out, n);
        }
        AccessRecord::PutVhost(v) => {
            out.push(K_PUT_VHOST);
            put_str(out, &v.name);
            put_str(out, &v.description);
            put_list(out, &v.tags);
            put_str(out, &v.default_queue_type);
        }
        AccessRecord::DeleteVhost(n) => {
            out.push(K_DELETE_VHOST);
            put_str(out, n);
        }
        AccessRecord::PutPermission(p) => {
            out.push(K_PUT_PERMISSION);
            for s in [&p.user, &p.vhost, &p.configure, &p.write, &p.read] {
                put_str(out, s);
            }
        }
        AccessRecord::DeletePermission(u, v) => {
            out.push(K_DELETE_PERMISSION);
            put_str(out, u);
            put_str(out, v);
        }
        AccessRecord::PutTopicPermission(t) => {
            out.push(K_PUT_TOPIC_PERMISSION);
            for s in [&t.user, &t.vhost, &t.exchange, &t.write, &t.read] {
                put_str(out, s);
            }
        }
        AccessRecord::DeleteTopicPermission(u, v, x) => {
            out.push(K_DELETE_TOPIC_PERMISSION);
            for s in [u, v, x] {
                put_str(out, s);
            }
        }
        AccessRecord::SetVhostLimits(v, l) => {
            out.push(K_VHOST_LIMITS);
            put_str(out, v);
            put_i64(out, l.max_connections);
            put_i64(out, l.max_queues);
        }
        AccessRecord::SetUserLimits(u, l) => {
            out.push(K_USER_LIMITS);
            put_str(out, u);
            put_i64(out, l.max_connections);
            put_i64(out, l.max_channels);
        }
        AccessRecord::Param(p) => encode_param(out, p),
    }
}

fn encode_param(out: &mut Vec<u8>, rec: &ParamRecord) {
    match rec {
        ParamRecord::PutPolicy(kind, v, n, p) => {
            out.push(K_PUT_POLICY);
            out.push(policy_kind_byte(*kind));
            for s in [v, n, &p.pattern, &p.apply_to] {
                put_str(out, s);
            }
            put_i64(out, p.priority);
            put_str(out, &p.definition);
        }
        ParamRecord::DeletePolicy(kind, v, n) => {
            out.push(K_DELETE_POLICY);
            out.push(policy_kind_byte(*kind));
            put_str(out, v);
            put_str(out, n);
        }
        ParamRecord::PutParameter(c, v, n, val) => {
            out.push(K_PUT_PARAMETER);
            for s in [c, v, n, val] {
                put_str(out, s);
            }
        }
        ParamRecord::DeleteParameter(c, v, n) => {
            out.push(K_DELETE_PARAMETER);
            for s in [c, v, n] {
                put_str(out, s);
            }
        }
        ParamRecord::PutGlobal(n, val) => {
            out.push(K_PUT_GLOBAL);
            put_str(out, n);
            put_str(out, val);
        }
        ParamRecord::DeleteGlobal(n) => {
            out.push(K_DELETE_GLOBAL);
            put_str(out, n);
        }
    }
}

fn list(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let n = r.u32()?;
    if n > LIST_ENTRIES_MAX {
        return None;
    }
    (0..n).map(|_| r.string()).collect()
}

fn i64_(r: &mut Reader<'_>) -> Option<i64> {
    Some(r.u64()? as i64)
}

/// Decodes the fields after the type byte (None: damaged).
pub(crate) fn decode_access(r: &mut Reader<'_>) -> Option<AccessRecord> {
    Some(match r.u8()? {
        K_SEEDED => AccessRecord::Seeded,
        K_PUT_USER => {
            let name = r.string()?;
            let algorithm = algorithm_of(r.u8()?)?;
            let password_hash = r.vec()?;
            AccessRecord::PutUser(UserRecord {
                name,
                password_hash,
                algorithm,
                tags: list(r)?,
            })
        }
        K_DELETE_USER => AccessRecord::DeleteUser(r.string()?),
        K_PUT_VHOST => AccessRecord::PutVhost(VhostRecord {
            name: r.string()?,
            description: r.string()?,
            tags: list(r)?,
            default_queue_type: r.string()?,
        }),
        K_DELETE_VHOST => AccessRecord::DeleteVhost(r.string()?),
        K_PUT_PERMISSION => AccessRecord::PutPermission(PermissionRecord {
            user: r.string()?,
            vhost: r.string()?,
            configure: r.string()?,
            write: r.string()?,
            read: r.string()?,
        }),
        K_DELETE_PERMISSION => AccessRecord::DeletePermission(r.string()?, r.string()?),
        K_PUT_TOPIC_PERMISSION => AccessRecord::PutTopicPermission(TopicPermissionRecord {
            user: r.string()?,
            vhost: r.string()?,
            exchange: r.string()?,
            write: r.string()?,
            read: r.string()?,
        }),
        K_DELETE_TOPIC_PERMISSION => {
            AccessRecord::DeleteTopicPermission(r.string()?, r.string()?, r.string()?)
        }
        K_VHOST_LIMITS => AccessRecord::SetVhostLimits(
            r.string()?,
            VhostLimits {
                max_connections: i64_(r)?,
                max_queues: i64_(r)?,
            },
        ),
        K_USER_LIMITS => AccessRecord::SetUserLimits(
            r.string()?,
            UserLimits {
                max_connections: i64_(r)?,
                max_channels: i64_(r)?,
            },
        ),
        K_PUT_POLICY => {
            let kind = policy_kind_of(r.u8()?)?;
            let (vhost, name) = (r.string()?, r.string()?);
            let policy = Policy {
                pattern: r.string()?,
                apply_to: r.string()?,
                priority: i64_(r)?,
                definition: r.string()?,
            };
            AccessRecord::Param(ParamRecord::PutPolicy(kind, vhost, name, policy))
        }
        K_DELETE_POLICY => AccessRecord::Param(ParamRecord::DeletePolicy(
            policy_kind_of(r.u8()?)?,
            r.string()?,
            r.string()?,
        )),
        K_PUT_PARAMETER => AccessRecord::Param(ParamRecord::PutParameter(
            r.string()?,
            r.string()?,
            r.string()?,
            r.string()?,
        )),
        K_DELETE_PARAMETER => AccessRecord::Param(ParamRecord::DeleteParameter(
            r.string()?,
            r.string()?,
            r.string()?,
        )),
        K_PUT_GLOBAL => AccessRecord::Param(ParamRecord::PutGlobal(r.string()?, r.string()?)),
        K_DELETE_GLOBAL => AccessRecord::Param(ParamRecord::DeleteGlobal(r.string()?)),
        _ => return None,
    })
}
