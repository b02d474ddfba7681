//! The byte stream under a [`crate::client::Connection`]: plain TCP, TLS over
//! TCP (rustls, for `amqps://` URIs), or an in-process stream to a broker in
//! this program (a Unix socketpair, or an in-memory pipe without a socket),
//! and its read and write halves for the
//! streaming phase. Plain TCP keeps tokio's owned halves (no lock between them);
//! a TLS stream is split with `tokio::io::split`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{unix, TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::uri::{AmqpUri, TlsTarget};

/// The host name of a URI served by [`set_in_process_connector`]'s connector
/// over a Unix socketpair (`amqp://guest:guest@in-process/%2f`).
pub const IN_PROCESS_HOST: &str = "in-process";

/// The host name of a URI served by the same connector over an in-memory
/// pipe (`amqp://guest:guest@in-memory/%2f`).
pub const IN_MEMORY_HOST: &str = "in-memory";

/// Which in-process stream a URI asks the connector for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InProcessKind {
    /// A Unix socketpair ([`IN_PROCESS_HOST`]).
    Socket,
    /// An in-memory pipe ([`IN_MEMORY_HOST`]).
    Memory,
}

/// The application's end of an in-process connection.
pub enum InProcessStream {
    /// A Unix socketpair (`warren_embedded::Broker::stream`).
    Socket(std::os::unix::net::UnixStream),
    /// An in-memory pipe (`warren_embedded::Broker::memory_stream`).
    Memory(warren_pipe::PipeStream),
}

/// Opens the application's end of an in-process connection to a broker in
/// this process.
pub type InProcessConnector =
    Box<dyn Fn(InProcessKind) -> io::Result<InProcessStream> + Send + Sync>;

/// Set once by a program that embeds a broker and runs the load loops in the
/// same process: URIs whose host is [`IN_PROCESS_HOST`] or [`IN_MEMORY_HOST`]
/// connect through it.
static IN_PROCESS: OnceLock<InProcessConnector> = OnceLock::new();

/// Registers the connector for in-process URIs (the first call wins).
pub fn set_in_process_connector(connector: InProcessConnector) {
    let _ = IN_PROCESS.set(connector);
}

/// A connected socket, with or without TLS.
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: the session state is large).
    Tls(Box<TlsStream<TcpStream>>),
    /// An in-process connection (a Unix socketpair to a broker in this process).
    Unix(UnixStream),
    /// An in-process connection without a socket (an in-memory pipe).
    Memory(warren_pipe::PipeStream),
}

/// The read half of a [`Stream`].
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS over TCP.
    Tls(tokio::io::ReadHalf<Box<TlsStream<TcpStream>>>),
    /// In-process.
    Unix(unix::OwnedReadHalf),
    /// In-process, in memory.
    Memory(warren_pipe::PipeReader),
}

/// The write half of a [`Stream`].
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(tokio::io::WriteHalf<Box<TlsStream<TcpStream>>>),
    /// In-process.
    Unix(unix::OwnedWriteHalf),
    /// In-process, in memory.
    Memory(warren_pipe::PipeWriter),
}

impl Stream {
    /// TCP connect (Nagle off: callers batch themselves), then the TLS handshake for `amqps://`.
    pub async fn connect(uri: &AmqpUri) -> anyhow::Result<Stream> {
        let kind = match uri.addr.split(':').next() {
            Some(IN_PROCESS_HOST) => Some(InProcessKind::Socket),
            Some(IN_MEMORY_HOST) => Some(InProcessKind::Memory),
            _ => None,
        };
        if let Some(kind) = kind {
            let connector = IN_PROCESS
                .get()
                .context("no in-process connector registered (set_in_process_connector)")?;
            return match connector(kind).context("opening an in-process connection")? {
                InProcessStream::Socket(std) => {
                    std.set_nonblocking(true)?;
                    Ok(Stream::Unix(UnixStream::from_std(std)?))
                }
                InProcessStream::Memory(pipe) => Ok(Stream::Memory(pipe)),
            };
        }
        let tcp = TcpStream::connect(&uri.addr)
            .await
            .with_context(|| format!("connecting to {}", uri.addr))?;
        tcp.set_nodelay(true)?;
        let Some(target) = &uri.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let connector = connector(target)?;
        let name = ServerName::try_from(target.server_name.clone())
            .with_context(|| format!("bad TLS server name {}", target.server_name))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {}", uri.addr))?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// Independent read and write halves.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
            Stream::Memory(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Memory(r), WriteHalf::Memory(w))
            }
        }
    }
}

/// A rustls client trusting only the CA bundle of `target` (TLS 1.2 and 1.3, ring).
fn connector(target: &TlsTarget) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&target.ca_file)
        .with_context(|| format!("reading CA bundle {}", target.ca_file))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("parsing CA bundle {}", target.ca_file))?;
        roots.add(cert).context("adding a CA certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `AsyncRead`/`AsyncWrite` by delegation to whichever variant is inside (all are `Unpin`).
macro_rules! delegate_io {
    ($t:ident) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $t::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                    $t::Tls(s) => Pin::new(s).poll_read(cx, buf),
                    $t::Unix(s) => Pin::new(s).poll_read(cx, buf),
                    $t::Memory(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
    ($t:ident, write) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $t::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                    $t::Tls(s) => Pin::new(s).poll_write(cx, buf),
                    $t::Unix(s) => Pin::new(s).poll_write(cx, buf),
                    $t::Memory(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $t::Tcp(s) => Pin::new(s).poll_flush(cx),
                    $t::Tls(s) => Pin::new(s).poll_flush(cx),
                    $t::Unix(s) => Pin::new(s).poll_flush(cx),
                    $t::Memory(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $t::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                    $t::Tls(s) => Pin::new(s).poll_shutdown(cx),
                    $t::Unix(s) => Pin::new(s).poll_shutdown(cx),
                    $t::Memory(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_io!(Stream);
delegate_io!(Stream, write);
delegate_io!(ReadHalf);
delegate_io!(WriteHalf, write);
