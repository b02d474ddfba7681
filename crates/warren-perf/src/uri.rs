//! `amqp://user:pass@host:port/vhost` parsing (percent-decoding user, password and
//! vhost, like the AMQP URI spec; an empty path means vhost `/`).

use anyhow::{bail, Context};

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpUri {
    /// `host:port`, ready for `TcpStream::connect`.
    pub addr: String,
    /// PLAIN user name.
    pub user: String,
    /// PLAIN password.
    pub password: String,
    /// Virtual host (already percent-decoded).
    pub vhost: String,
}

impl AmqpUri {
    pub fn parse(s: &str) -> anyhow::Result<AmqpUri> {
        let rest = s
            .strip_prefix("amqp://")
            .with_context(|| format!("URI must start with amqp://: {s}"))?;
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (decode(u)?, decode(p)?),
                None => (decode(u)?, String::new()),
            },
            None => ("guest".to_string(), "guest".to_string()),
        };
        let host = if hostport.is_empty() {
            "127.0.0.1"
        } else {
            hostport
        };
        let addr = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:5672")
        };
        let vhost = match path {
            None | Some("") => "/".to_string(),
            Some(p) => decode(p)?,
        };
        Ok(AmqpUri {
            addr,
            user,
            password,
            vhost,
        })
    }
}

fn decode(s: &str) -> anyhow::Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).context("truncated %-escape in URI")?;
            let v = u8::from_str_radix(hex, 16).with_context(|| format!("bad %-escape %{hex}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Ok(s),
        Err(_) => bail!("URI component is not UTF-8 after decoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_uri() {
        let u = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(u.addr, "127.0.0.1:5672");
        assert_eq!(u.vhost, "/");
        assert_eq!(u.user, "guest");
        let u = AmqpUri::parse("amqp://localhost").unwrap();
        assert_eq!(u.addr, "localhost:5672");
        assert_eq!(u.vhost, "/");
    }
}
