//! Users and SASL PLAIN / AMQPLAIN authentication.

use amqp_codec::FieldTable;
use bytes::{BufMut, Bytes, BytesMut};
use rustc_hash::FxHashMap;

use crate::error::AmqpError;

pub(crate) struct User {
    password: String,
    /// RabbitMQ's default user may only connect from loopback.
    loopback_only: bool,
}

pub(crate) struct Users {
    users: FxHashMap<String, User>,
}

impl Default for Users {
    fn default() -> Self {
        let mut users = FxHashMap::default();
        users.insert(
            "guest".to_string(),
            User {
                password: "guest".to_string(),
                loopback_only: true,
            },
        );
        Users { users }
    }
}

impl Users {
    /// PLAIN and AMQPLAIN check the password in `response`. For EXTERNAL,
    /// `response` is not the client's: it is the user name of the client
    /// certificate the server verified (the server never passes client
    /// bytes for it); the user must exist, and no password is checked, as
    /// in rabbitmq_auth_mechanism_ssl.
    pub fn authenticate(
        &self,
        mechanism: &str,
        response: &[u8],
        from_loopback: bool,
    ) -> Result<String, AmqpError> {
        if mechanism == "EXTERNAL" {
            let user = std::str::from_utf8(response).map_err(|_| refused(mechanism))?;
            return match self.users.get(user) {
                Some(u) if from_loopback || !u.loopback_only => Ok(user.to_string()),
                _ => Err(refused(mechanism)),
            };
        }
        let (user, pass) = match mechanism {
            "PLAIN" => parse_plain(response),
            "AMQPLAIN" => parse_amqplain(response),
            _ => None,
        }
        .ok_or_else(|| refused(mechanism))?;
        match self.users.get(&user) {
            Some(u) if u.password == pass && (from_loopback || !u.loopback_only) => Ok(user),
            _ => Err(refused(mechanism)),
        }
    }
}

/// RabbitMQ's text for a refused login (whatever the reason).
pub fn refused(mechanism: &str) -> AmqpError {
    AmqpError::access_refused(format!(
        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
    ))
}

/// PLAIN: `[authzid] NUL authcid NUL passwd`.
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

/// AMQPLAIN: a field table without its length prefix holding LOGIN and PASSWORD.
fn parse_amqplain(r: &[u8]) -> Option<(String, String)> {
    let mut buf = BytesMut::with_capacity(r.len() + 4);
    buf.put_u32(u32::try_from(r.len()).ok()?);
    buf.extend_from_slice(r);
    let mut bytes: Bytes = buf.freeze();
    let table = FieldTable::decode(&mut bytes).ok()?;
    let user = table.get("LOGIN")?.as_str()?.to_string();
    let pass = table.get("PASSWORD")?.as_str()?.to_string();
    Some((user, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_loopback_rule() {
        let u = Users::default();
        assert_eq!(
            u.authenticate("PLAIN", b"\0guest\0guest", true).unwrap(),
            "guest"
        );
        assert!(u.authenticate("PLAIN", b"\0guest\0guest", false).is_err());
        assert!(u.authenticate("PLAIN", b"\0guest\0nope", true).is_err());
        assert!(u.authenticate("PLAIN", b"garbage", true).is_err());
        assert!(u.authenticate("EXTERNAL", b"", true).is_err());
        // EXTERNAL: a verified certificate name of an existing user, no
        // password, the loopback rule still applies.
        assert_eq!(u.authenticate("EXTERNAL", b"guest", true).unwrap(), "guest");
        assert!(u.authenticate("EXTERNAL", b"guest", false).is_err());
        assert!(u.authenticate("EXTERNAL", b"nobody", true).is_err());
    }
}
