//! The kinds of connection stream the reader and writer tasks run on:
//! plain TCP halves (readiness + non-blocking reads, `writev`, and
//! write-through from `sink.rs`), TLS halves (rustls through tokio-rustls;
//! no write-through, so encryption never runs under the core lock), and
//! in-process Unix socketpair halves (`Node::connect_in_process`; handled
//! exactly like plain TCP, write-through included), and in-memory pipe
//! halves (`Node::connect_memory`, warren-pipe: no socket, no
//! write-through). `conn.rs` is generic
//! over these traits, so the plain-TCP code is what it was before TLS
//! existed.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{unix, TcpStream};
use tokio_rustls::server::TlsStream;

/// Grows `buf` to at least `want / 4` free bytes (by `want`).
fn reserve(buf: &mut BytesMut, want: usize) {
    if buf.capacity() - buf.len() < want / 4 {
        buf.reserve(want);
    }
}

/// The read side of a connection.
pub(crate) trait ConnRead: AsyncRead + Unpin + Send + 'static {
    /// Waits until data (or EOF) is there and reads it into `buf`, which
    /// is grown (by `want`) only once the socket is readable where the
    /// stream allows it. `Ok(None)`: readiness was spurious, nothing read.
    fn read_ready(
        &mut self,
        buf: &mut BytesMut,
        want: usize,
    ) -> impl Future<Output = io::Result<Option<usize>>> + Send;
}

/// The write side of a connection.
pub(crate) trait ConnWrite: AsyncWrite + Unpin + Send + 'static {
    /// Writes may stay buffered in the stream until a flush.
    const BUFFERED: bool;

    /// Ends the connection once everything is written: FIN (and TLS
    /// close_notify), or with `abort` a reset (zero linger, no FIN).
    fn finish(self, abort: bool) -> impl Future<Output = ()> + Send;
}

impl ConnRead for OwnedReadHalf {
    async fn read_ready(&mut self, buf: &mut BytesMut, want: usize) -> io::Result<Option<usize>> {
        // `poll_read_ready` parks the waker in the socket's own reader
        // slot; `readable()` would keep a waiter node (~200 B) in every
        // idle connection's task (memory per connection).
        std::future::poll_fn(|cx| self.as_ref().poll_read_ready(cx)).await?;
        reserve(buf, want);
        match self.try_read_buf(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl ConnWrite for OwnedWriteHalf {
    const BUFFERED: bool = false;

    async fn finish(mut self, abort: bool) {
        if abort {
            // With a zero linger the socket's close (when the read half
            // goes too) sends RST; `forget` keeps the write half's drop
            // from sending a FIN first.
            let _ = self.as_ref().set_zero_linger();
            self.forget();
        } else {
            let _ = self.shutdown().await;
        }
    }
}

impl ConnRead for unix::OwnedReadHalf {
    async fn read_ready(&mut self, buf: &mut BytesMut, want: usize) -> io::Result<Option<usize>> {
        // As for TCP: the socket's reader slot, no waiter node.
        std::future::poll_fn(|cx| self.as_ref().poll_read_ready(cx)).await?;
        reserve(buf, want);
        match self.try_read_buf(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl ConnWrite for unix::OwnedWriteHalf {
    const BUFFERED: bool = false;

    async fn finish(mut self, abort: bool) {
        // A Unix socket has no reset: an abort just closes it (when the
        // read half goes too) without the shutdown.
        if abort {
            self.forget();
        } else {
            let _ = self.shutdown().await;
        }
    }
}

impl ConnRead for warren_pipe::PipeReader {
    async fn read_ready(&mut self, buf: &mut BytesMut, want: usize) -> io::Result<Option<usize>> {
        // The pipe hands over what it holds (at most `want`): no readiness
        // step, and the buffer grows only when there is something to read.
        std::future::poll_fn(|cx| self.poll_read_into(cx, buf, want))
            .await
            .map(Some)
    }
}

impl ConnWrite for warren_pipe::PipeWriter {
    const BUFFERED: bool = false;

    async fn finish(mut self, _abort: bool) {
        // No reset on a pipe: EOF either way (dropping also ends it).
        let _ = self.shutdown().await;
    }
}

/// The read half of a TLS connection.
pub(crate) type TlsRead = ReadHalf<TlsStream<TcpStream>>;

impl ConnRead for TlsRead {
    async fn read_ready(&mut self, buf: &mut BytesMut, want: usize) -> io::Result<Option<usize>> {
        // Decrypted bytes may already wait inside rustls, so socket
        // readiness says nothing: read (cancel-safe) into a reserved buffer.
        reserve(buf, want);
        self.read_buf(buf).await.map(Some)
    }
}

/// The write half of a TLS connection, with its socket for the reset.
pub(crate) struct TlsWrite {
    /// Encrypts and writes (tokio-rustls; shares the session with the
    /// read half).
    half: WriteHalf<TlsStream<TcpStream>>,
    /// The TCP socket under it, open while either half lives.
    fd: RawFd,
}

/// Splits an accepted TLS stream into its halves.
pub(crate) fn split_tls(stream: TlsStream<TcpStream>) -> (TlsRead, TlsWrite) {
    let fd = stream.get_ref().0.as_raw_fd();
    let (rd, half) = tokio::io::split(stream);
    (rd, TlsWrite { half, fd })
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.half).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // rustls encrypts all slices of one call into as few records as
        // their total length needs: a batch of small frames is one record.
        Pin::new(&mut self.half).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.half.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_shutdown(cx)
    }
}

impl ConnWrite for TlsWrite {
    const BUFFERED: bool = true;

    async fn finish(mut self, abort: bool) {
        if abort {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: `fd` is the open socket under `half` (alive until
            // both halves drop); the option value is a valid `linger`.
            unsafe {
                libc::setsockopt(
                    self.fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            // Dropped without shutdown: no close_notify, no FIN; the
            // socket resets when the read half goes too.
        } else {
            let _ = self.half.shutdown().await;
        }
    }
}
