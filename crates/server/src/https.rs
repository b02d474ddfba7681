//! The TLS listener the management API and the metrics are served on
//! (HTTPS, RabbitMQ's `management.ssl.port` 15671 and
//! `prometheus.ssl.port` 15691): TCP accept, then the TLS handshake with
//! the configuration of the one `TlsConfigHolder` (`tls.rs`: the same
//! certificate, CA, `verify_peer` / `fail_if_no_peer_cert` and reload as
//! AMQPS), then HTTP by the management crate, which never sees TLS.
//!
//! Handshakes run as tasks of their own, several at once, each with a
//! deadline, so a client that connects and sends nothing (or plain HTTP)
//! never holds up the others: it is dropped, and the listener keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

use crate::tls::TlsConfigHolder;

/// Handshakes in progress at once; further connections wait in the
/// kernel's accept backlog until one finishes.
pub const HTTPS_HANDSHAKES_PENDING_MAX: usize = 64;

/// What a handshake task yields: the stream and its peer, or None after a
/// failed or timed-out handshake (logged).
type Handshake = Option<(TlsStream<TcpStream>, SocketAddr)>;

/// An HTTPS listener for `mgmt::Api::serve` / `mgmt::prometheus::Metrics::serve`.
pub struct HttpsListener {
    /// The bound TCP listener.
    tcp: TcpListener,
    /// The TLS configuration, taken once per accepted connection.
    holder: Arc<TlsConfigHolder>,
    /// A client must finish its handshake within this time.
    handshake_timeout_ms: u64,
    /// Handshakes in progress (at most `HTTPS_HANDSHAKES_PENDING_MAX`).
    handshakes: JoinSet<Handshake>,
    /// Names the listener in log lines (`https`, `https/prometheus`).
    label: &'static str,
}

impl HttpsListener {
    /// Wraps a bound listener (call on the runtime that will serve it).
    pub fn new(
        tcp: std::net::TcpListener,
        holder: Arc<TlsConfigHolder>,
        handshake_timeout_ms: u64,
        label: &'static str,
    ) -> std::io::Result<HttpsListener> {
        Ok(HttpsListener {
            tcp: TcpListener::from_std(tcp)?,
            holder,
            handshake_timeout_ms,
            handshakes: JoinSet::new(),
            label,
        })
    }

    /// Starts the handshake of a new connection as a task.
    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.holder.current());
        let timeout = Duration::from_millis(self.handshake_timeout_ms);
        let label = self.label;
        self.handshakes.spawn(async move {
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                Ok(Err(e)) => {
                    tracing::info!(%peer, "{label}: TLS handshake failed: {e}");
                    None
                }
                Err(_) => {
                    tracing::info!(%peer, "{label}: TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl mgmt::HttpListener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    /// The next connection whose handshake succeeded. Cancel-safe (axum
    /// drops it on shutdown): both awaited operations are.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < HTTPS_HANDSHAKES_PENDING_MAX;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("{}: accept failed: {e}", self.label);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
