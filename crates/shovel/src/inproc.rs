//! lapin over an in-process stream (the application's end of a Unix
//! socketpair whose other end a warren node serves). lapin 2.5 takes its
//! stream from a caller through `Connection::connector` (a closure
//! returning its `TcpStream`, amq-protocol-tcp's re-export of
//! `tcp_stream::TcpStream`). That type is an enum whose plain variant
//! wraps `std::net::TcpStream`, which it builds `FromRawFd`; lapin then
//! only reads, writes and polls readiness on it (async-io) — never an
//! address, `nodelay` or TCP-only option (checked in lapin 2.5.5,
//! amq-protocol-tcp 7.2.3, tcp-stream 0.28). So the Unix stream goes in as
//! that type: recv/send/writev/shutdown behave the same on an AF_UNIX
//! stream socket, and a TCP-only call would return an error, not
//! misbehave.

use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

/// An I/O error as lapin's.
pub fn io_error(e: std::io::Error) -> lapin::Error {
    lapin::Error::IOError(Arc::new(e))
}

/// Connects lapin over `stream` (an in-process stream) as `uri` says
/// (user, password, vhost, frame_max, channel_max, heartbeat; its host and
/// port are not used).
pub async fn connect_stream(
    stream: std::io::Result<UnixStream>,
    uri: AMQPUri,
    props: ConnectionProperties,
) -> lapin::Result<Connection> {
    let fd = stream.map_err(io_error)?.into_raw_fd();
    // SAFETY: `fd` is an open stream socket we own (just released by
    // `into_raw_fd`); the new value takes over closing it. It is AF_UNIX,
    // not TCP: std's TcpStream and tcp-stream only make socket syscalls on
    // it (an AF_UNIX address would be an error value, not UB), and lapin
    // makes none that differ between the two (see the module comment).
    let tcp = unsafe { lapin::tcp::TcpStream::from_raw_fd(fd) };
    // lapin's signature: its error type is large, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let connect = move |_: &AMQPUri| Ok(tcp);
    Connection::connector(uri, Box::new(connect), props).await
}
