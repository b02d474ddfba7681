//! `amqp://user:pass@host:port/vhost` parsing (percent-decoding user, password and
//! vhost, like the AMQP URI spec; an empty path means vhost `/`). `amqps://` is
//! AMQP over TLS (default port 5671); the CA bundle the server's certificate must
//! chain to is the query parameter `cacertfile` (as RabbitMQ's Erlang client
//! spells it), e.g. `amqps://guest:guest@localhost:5671/%2f?cacertfile=/tmp/ca.pem`.

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
    /// `amqps://`: connect with TLS.
    pub tls: Option<TlsTarget>,
}

/// How to check the server of an `amqps://` URI.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsTarget {
    /// The name the server's certificate must carry (the URI's host: a DNS name or an IP address).
    pub server_name: String,
    /// PEM CA bundle (`?cacertfile=`, percent-decoded).
    pub ca_file: String,
}

impl AmqpUri {
    pub fn parse(s: &str) -> anyhow::Result<AmqpUri> {
        let (rest, secure) = match (s.strip_prefix("amqp://"), s.strip_prefix("amqps://")) {
            (Some(r), _) => (r, false),
            (None, Some(r)) => (r, true),
            (None, None) => bail!("URI must start with amqp:// or amqps://: {s}"),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let mut ca_file = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cacertfile", v)) => ca_file = Some(decode(v)?),
                _ => bail!("unsupported URI query parameter {pair} (known: cacertfile)"),
            }
        }
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
            format!("{host}:{}", if secure { 5671 } else { 5672 })
        };
        let tls = match (secure, ca_file) {
            (false, None) => None,
            (false, Some(_)) => bail!("cacertfile is for amqps:// URIs"),
            (true, None) => {
                bail!("an amqps:// URI needs ?cacertfile=PEM (the CA of the server's certificate)")
            }
            (true, Some(ca_file)) => {
                let server_name = match addr.rsplit_once(':') {
                    Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
                    None => addr.as_str(),
                };
                Some(TlsTarget {
                    server_name: server_name.to_string(),
                    ca_file,
                })
            }
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
            tls,
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
        assert_eq!(u.tls, None);
    }

    #[test]
    fn parses_amqps_uri() {
        let u = AmqpUri::parse("amqps://u:p@localhost/v?cacertfile=%2Ftmp%2Fca.pem").unwrap();
        assert_eq!(u.addr, "localhost:5671");
        assert_eq!(u.vhost, "v");
        let t = u.tls.unwrap();
        assert_eq!(t.server_name, "localhost");
        assert_eq!(t.ca_file, "/tmp/ca.pem");
        let u = AmqpUri::parse("amqps://127.0.0.1:5999?cacertfile=ca.pem").unwrap();
        assert_eq!(u.addr, "127.0.0.1:5999");
        assert_eq!(u.tls.unwrap().server_name, "127.0.0.1");
        assert!(AmqpUri::parse("amqps://localhost/").is_err());
        assert!(AmqpUri::parse("amqp://localhost/?cacertfile=x").is_err());
        assert!(AmqpUri::parse("amqp://localhost/?verify=none").is_err());
    }
}
