//! The domain: a registration request, its validation, the stored user, the event and the score.

use serde::{Deserialize, Serialize};

/// Longest accepted e-mail address, bytes (RFC 5321's path limit).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest accepted name, characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Routing key of the registration event.
pub const USER_REGISTERED: &str = "user.registered";

/// The body of `POST /users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// E-mail address (one `@`, non-empty local part and domain with a dot).
    pub email: String,
    /// Display name (1 to [`NAME_CHARS_MAX`] characters after trimming).
    pub name: String,
}

/// A registered user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// Server-assigned id.
    pub id: String,
    /// E-mail address.
    pub email: String,
    /// Display name (trimmed).
    pub name: String,
}

/// The `user.registered` event body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    /// The user.
    pub user: User,
    /// When the API accepted the request, Unix microseconds (end-to-end latency is measured from it).
    pub accepted_at_us: u64,
}

/// The score RPC's reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Score {
    /// The user id.
    pub id: String,
    /// 0..=999, derived from the user's data.
    pub score: u32,
}

/// Parses and validates a registration body; the error text is the 400 answer.
pub fn parse_new_user(body: &[u8]) -> Result<NewUser, String> {
    let mut u: NewUser =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    u.name = u.name.trim().to_owned();
    u.email = u.email.trim().to_owned();
    if u.name.is_empty() {
        return Err("name: must not be empty".into());
    }
    if u.name.chars().count() > NAME_CHARS_MAX {
        return Err(format!("name: at most {NAME_CHARS_MAX} characters"));
    }
    if u.email.len() > EMAIL_BYTES_MAX {
        return Err(format!("email: at most {EMAIL_BYTES_MAX} bytes"));
    }
    let valid = match u.email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !u.email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !valid {
        return Err("email: not an e-mail address".into());
    }
    Ok(u)
}

/// The score of a user: a stable function of its data (stands in for a real model).
pub fn score_of(u: &User) -> u32 {
    let h = u
        .email
        .bytes()
        .chain(u.name.bytes())
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    h % 1000
}

/// Wall-clock Unix time, microseconds.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_accepts_good_and_rejects_bad_bodies() {
        assert!(parse_new_user(br#"{"email":"a@b.io","name":" Ann "}"#).is_ok());
        let bad: [&[u8]; 7] = [
            b"not json",
            br#"{"email":"a@b.io"}"#,
            br#"{"email":"ab.io","name":"A"}"#,
            br#"{"email":"a@b","name":"A"}"#,
            br#"{"email":"a@b.io","name":"  "}"#,
            br#"{"email":"a@b.io","name":"A","admin":true}"#,
            br#"{"email":"a b@c.io","name":"A"}"#,
        ];
        for b in bad {
            assert!(parse_new_user(b).is_err(), "{}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn scores_are_stable_and_bounded() {
        let u = User {
            id: "1".into(),
            email: "a@b.io".into(),
            name: "Ann".into(),
        };
        assert_eq!(score_of(&u), score_of(&u.clone()));
        assert!(score_of(&u) < 1000);
    }
}
