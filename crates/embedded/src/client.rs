//! lapin over the in-process transport (the Unix socketpair trick lives
//! in `warren_shovel::inproc`, shared with the server's dynamic shovels).

use std::os::unix::net::UnixStream;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use warren_shovel::inproc::io_error;

/// The URL scheme of embedded brokers: `warren-embedded://[user:pass@]NAME[/vhost][?heartbeat=..]`.
pub const SCHEME: &str = "warren-embedded";

/// `guest` to vhost `/` of broker `name`.
pub(crate) fn guest_uri(name: &str) -> AMQPUri {
    let mut uri = AMQPUri::default();
    uri.authority.host = name.into();
    uri
}

/// Connects lapin over `stream` (see `warren_shovel::inproc`).
pub(crate) async fn connect_stream(
    stream: std::io::Result<UnixStream>,
    uri: AMQPUri,
    props: ConnectionProperties,
) -> lapin::Result<Connection> {
    warren_shovel::inproc::connect_stream(stream, uri, props).await
}

/// Connects lapin to the embedded broker the URI's host names
/// (`warren-embedded://user:pass@NAME/vhost` parsed as an `amqp://` URI).
pub async fn connect_uri(uri: AMQPUri, props: ConnectionProperties) -> lapin::Result<Connection> {
    let stream = match crate::registry::lookup(&uri.authority.host) {
        Some(c) => c.connect(),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no embedded broker named {:?} runs in this process",
                uri.authority.host
            ),
        )),
    };
    connect_stream(stream, uri, props).await
}

/// Parses `warren-embedded://[user:pass@]NAME[/vhost][?query]` (the
/// `amqp://` URI syntax and defaults: guest/guest, vhost `/`).
pub fn parse_url(url: &str) -> Result<AMQPUri, String> {
    let rest = url
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| format!("not a {SCHEME}:// URL: {url}"))?;
    format!("amqp://{rest}").parse()
}

/// Connects lapin to an embedded broker by URL (see [`parse_url`]).
pub async fn connect_url(url: &str, props: ConnectionProperties) -> lapin::Result<Connection> {
    let uri = parse_url(url)
        .map_err(|e| io_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    connect_uri(uri, props).await
}
