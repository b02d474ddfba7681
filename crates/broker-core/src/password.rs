//! RabbitMQ's password hashing (`rabbit_password`,
//! `rabbit_password_hashing_sha256` / `_sha512` / `_md5`): the stored hash
//! is `salt ‖ H(salt ‖ password)` with a 4-byte random salt, base64 on the
//! wire. Verification recomputes with the stored salt and compares in
//! constant time. Called outside the core lock (see `access.rs`).

use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

use crate::access::{UserRecord, DEFAULT_USER};

/// Salt length in bytes (RabbitMQ's `crypto:strong_rand_bytes(4)`).
pub const SALT_BYTES: usize = 4;

/// The digest of a stored password hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    /// `rabbit_password_hashing_sha256` (the default).
    #[default]
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// `rabbit_password_hashing_md5` (legacy imports).
    Md5,
}

impl HashAlgorithm {
    /// RabbitMQ's module name, as in definitions (`hashing_algorithm`).
    pub fn module_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// The algorithm a module name names (None: unknown).
    pub fn from_module_name(s: &str) -> Option<HashAlgorithm> {
        match s {
            "rabbit_password_hashing_sha256" => Some(HashAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" => Some(HashAlgorithm::Sha512),
            "rabbit_password_hashing_md5" => Some(HashAlgorithm::Md5),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha512 => Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashAlgorithm::Md5 => Md5::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        }
    }
}

/// `salt ‖ H(salt ‖ password)`.
pub fn hash_with_salt(alg: HashAlgorithm, salt: [u8; SALT_BYTES], password: &str) -> Vec<u8> {
    let mut out = salt.to_vec();
    out.extend_from_slice(&alg.digest(&salt, password.as_bytes()));
    out
}

/// Hashes a password with a fresh random salt.
pub fn hash_password(alg: HashAlgorithm, password: &str) -> Vec<u8> {
    let mut salt = [0u8; SALT_BYTES];
    if getrandom::getrandom(&mut salt).is_err() {
        // No OS randomness: fall back to the std hasher's random keys.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        salt.copy_from_slice(&h.finish().to_le_bytes()[..SALT_BYTES]);
    }
    hash_with_salt(alg, salt, password)
}

/// Standard base64 with padding, as `password_hash` is written.
pub fn encode_hash(hash: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Decodes a `password_hash` (None: not base64).
pub fn decode_hash(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Compares in time independent of where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl UserRecord {
    /// A user with a password hashed now (SHA-256).
    pub fn with_password(name: &str, password: &str, tags: Vec<String>) -> UserRecord {
        UserRecord {
            name: name.to_string(),
            password_hash: hash_password(HashAlgorithm::Sha256, password),
            algorithm: HashAlgorithm::Sha256,
            tags,
        }
    }

    /// RabbitMQ's check: no hash or a hash not of the `salt ‖ digest`
    /// shape refuses; an empty password refuses.
    pub fn verify(&self, password: &str) -> bool {
        if password.is_empty() || self.password_hash.len() <= SALT_BYTES {
            return false;
        }
        let (salt, _) = self.password_hash.split_at(SALT_BYTES);
        let mut s = [0u8; SALT_BYTES];
        s.copy_from_slice(salt);
        constant_time_eq(
            &hash_with_salt(self.algorithm, s, password),
            &self.password_hash,
        )
    }
}

/// guest/guest, administrator.
pub(crate) fn default_user() -> UserRecord {
    UserRecord::with_password(DEFAULT_USER, "guest", vec!["administrator".to_string()])
}

/// PLAIN (`[authzid] NUL authcid NUL passwd`) or AMQPLAIN (a field table
/// without its length prefix holding LOGIN and PASSWORD) credentials.
pub fn parse_credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => parse_plain(response),
        "AMQPLAIN" => parse_amqplain(response),
        _ => None,
    }
}

fn parse_plain(r: &[u8]) -> Option<(String, String)> {
    let mut parts = r.split(|&b| b == 0);
    let _authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}

fn parse_amqplain(r: &[u8]) -> Option<(String, String)> {
    use bytes::BufMut;
    let mut buf = bytes::BytesMut::with_capacity(r.len() + 4);
    buf.put_u32(u32::try_from(r.len()).ok()?);
    buf.extend_from_slice(r);
    let mut bytes = buf.freeze();
    let table = amqp_codec::FieldTable::decode(&mut bytes).ok()?;
    let user = table.get("LOGIN")?.as_str()?.to_string();
    let pass = table.get("PASSWORD")?.as_str()?.to_string();
    Some((user, pass))
}

/// RabbitMQ's refusal of a failed login.
pub fn login_refused(mechanism: &str) -> crate::error::AmqpError {
    crate::error::AmqpError::access_refused(format!(
        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_vectors() {
        // mgmt-api.md §2.3, from RabbitMQ's docs (computed with hashlib there).
        let h = hash_with_salt(HashAlgorithm::Sha256, [0x90, 0x8D, 0xC6, 0x0A], "test12");
        assert_eq!(
            encode_hash(&h),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
        let h = hash_with_salt(HashAlgorithm::Sha512, [0x90, 0x8D, 0xC6, 0x0A], "test12");
        let e = encode_hash(&h);
        assert_eq!(e.len(), 92);
        assert!(e.starts_with("kI3GChuNuIYf8lRbCCxZ"), "{e}");
        let guest = UserRecord {
            name: "guest".into(),
            password_hash: decode_hash("GtPZ6FiQ8rd8+NadFdqUlmOUf2AbcviHobH2WnCNlc5KeRMX").unwrap(),
            algorithm: HashAlgorithm::Sha256,
            tags: vec![],
        };
        assert!(guest.verify("guest"));
        assert!(!guest.verify("guesT"));
        assert!(!guest.verify(""));
        let md5 = UserRecord {
            password_hash: hash_with_salt(HashAlgorithm::Md5, [1, 2, 3, 4], "pw"),
            algorithm: HashAlgorithm::Md5,
            ..guest.clone()
        };
        assert_eq!(md5.password_hash.len(), 20);
        assert!(md5.verify("pw") && !md5.verify("px"));
        let none = UserRecord {
            password_hash: vec![],
            ..guest
        };
        assert!(!none.verify("guest"));
    }

    #[test]
    fn credentials() {
        assert_eq!(
            parse_credentials("PLAIN", b"\0guest\0guest"),
            Some(("guest".into(), "guest".into()))
        );
        assert_eq!(parse_credentials("PLAIN", b"garbage"), None);
        assert_eq!(parse_credentials("EXTERNAL", b""), None);
    }
}
