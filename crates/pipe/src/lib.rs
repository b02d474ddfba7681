//! An in-process byte stream without a socket: two bounded one-way pipes,
//! each a byte buffer behind a short lock, with tokio's `AsyncRead` and
//! `AsyncWrite` on the ends. A write copies into the buffer and wakes the
//! reader only if it waits; a read takes everything buffered at once (into
//! [`PipeReader::poll_read_into`] appends it to a `BytesMut`).
//! No system call, no kernel buffer accounting per write (a Unix socketpair
//! charges every small write a whole socket buffer of its own, and that
//! limit is what made it slower than loopback TCP).
//!
//! Limits: a pipe holds at most `bytes_max` unread bytes (a writer waits
//! for room beyond that, like a full socket), and a drained buffer larger
//! than [`IDLE_CAPACITY_BYTES_MAX`] is released, so an idle connection
//! keeps no buffer memory.
//!
//! Ends: dropping (or shutting down) a writer is EOF for the reader once
//! the buffer is read; dropping a reader makes writes fail with
//! `BrokenPipe` (as a socket's EPIPE).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A drained buffer with more capacity than this is freed, not kept.
pub const IDLE_CAPACITY_BYTES_MAX: usize = 64 * 1024;

/// One direction.
struct Pipe {
    state: Mutex<State>,
    /// Most unread bytes the buffer holds.
    bytes_max: usize,
}

#[derive(Default)]
struct State {
    /// Written, not yet read.
    buf: BytesMut,
    /// The writer is gone or shut down: EOF once `buf` is read.
    write_closed: bool,
    /// The reader is gone: writes fail.
    read_closed: bool,
    /// The reader waits for bytes.
    reader: Option<Waker>,
    /// The writer waits for room.
    writer: Option<Waker>,
}

/// Keeps `cx`'s waker in `slot` (no clone when it is the same one).
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Pipe {
    fn new(bytes_max: usize) -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(State::default()),
            bytes_max: bytes_max.max(1),
        })
    }

    /// Appends as much of `bufs` as there is room for and wakes a waiting
    /// reader. `Ok(0)` for a non-empty write means the pipe is full (the
    /// writer's waker is kept when `cx` is given); Err once either end is
    /// closed.
    fn write(&self, cx: Option<&Context<'_>>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut st = self.state.lock();
        if st.read_closed || st.write_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut room = self.bytes_max.saturating_sub(st.buf.len());
        if room == 0 {
            if let Some(cx) = cx {
                park(&mut st.writer, cx);
            }
            return Ok(0);
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room);
            st.buf.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        let reader = if n > 0 { st.reader.take() } else { None };
        drop(st);
        if let Some(w) = reader {
            w.wake();
        }
        Ok(n)
    }

    /// [`Pipe::write`], Pending while the pipe is full.
    fn poll_write(&self, cx: &Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        match self.write(Some(cx), bufs) {
            Ok(0) => Poll::Pending,
            r => Poll::Ready(r),
        }
    }

    /// Hands buffered bytes to `take` (which returns how many it took);
    /// Pending while empty and open, `Ok(false)` at EOF.
    fn poll_read(
        &self,
        cx: &Context<'_>,
        take: impl FnOnce(&mut BytesMut) -> usize,
    ) -> Poll<io::Result<bool>> {
        let mut st = self.state.lock();
        if st.buf.is_empty() {
            if st.write_closed {
                return Poll::Ready(Ok(false));
            }
            park(&mut st.reader, cx);
            return Poll::Pending;
        }
        let n = take(&mut st.buf);
        if st.buf.is_empty() && st.buf.capacity() > IDLE_CAPACITY_BYTES_MAX {
            st.buf = BytesMut::new();
        }
        let writer = if n > 0 { st.writer.take() } else { None };
        drop(st);
        if let Some(w) = writer {
            w.wake();
        }
        Poll::Ready(Ok(true))
    }

    fn close_write(&self) {
        let mut st = self.state.lock();
        st.write_closed = true;
        let reader = st.reader.take();
        drop(st);
        if let Some(w) = reader {
            w.wake();
        }
    }

    fn close_read(&self) {
        let mut st = self.state.lock();
        st.read_closed = true;
        st.buf = BytesMut::new();
        let writer = st.writer.take();
        drop(st);
        if let Some(w) = writer {
            w.wake();
        }
    }
}

/// A connected pair of streams: what one writes, the other reads. Each
/// direction holds at most `bytes_max` unread bytes.
pub fn pair(bytes_max: usize) -> (PipeStream, PipeStream) {
    let ab = Pipe::new(bytes_max);
    let ba = Pipe::new(bytes_max);
    (
        PipeStream {
            rd: PipeReader(ba.clone()),
            wr: PipeWriter(ab.clone()),
        },
        PipeStream {
            rd: PipeReader(ab),
            wr: PipeWriter(ba),
        },
    )
}

/// One end of a [`pair`].
pub struct PipeStream {
    rd: PipeReader,
    wr: PipeWriter,
}

impl PipeStream {
    /// Independent read and write halves (no lock between them).
    pub fn into_split(self) -> (PipeReader, PipeWriter) {
        (self.rd, self.wr)
    }
}

/// The read half of a [`PipeStream`].
pub struct PipeReader(Arc<Pipe>);

/// The write half of a [`PipeStream`].
pub struct PipeWriter(Arc<Pipe>);

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.0.close_read();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.0.close_write();
    }
}

impl PipeWriter {
    /// A handle that writes into this pipe without waiting, beside the
    /// writer (the broker's write-through). The caller keeps the two from
    /// interleaving; dropping it does not end the stream.
    pub fn sender(&self) -> PipeSender {
        PipeSender(self.0.clone())
    }
}

/// See [`PipeWriter::sender`].
#[derive(Clone)]
pub struct PipeSender(Arc<Pipe>);

impl PipeSender {
    /// Appends as much of `data` as there is room for, at once; returns how
    /// much (0 when the pipe is full or either end is closed).
    pub fn try_write(&self, data: &[u8]) -> usize {
        self.0.write(None, &[io::IoSlice::new(data)]).unwrap_or(0)
    }
}

impl PipeReader {
    /// Reads what is buffered, at most `max` bytes, onto the end of `dst`
    /// (0 bytes: EOF), which grows as needed.
    pub fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut BytesMut,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let mut n = 0;
        let max = max.max(1);
        let open = std::task::ready!(self.0.poll_read(cx, |buf| {
            n = buf.len().min(max);
            dst.extend_from_slice(&buf[..n]);
            buf.advance(n);
            n
        }))?;
        Poll::Ready(Ok(if open { n } else { 0 }))
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(self.0.poll_read(cx, |buf| {
            let n = buf.len().min(out.remaining());
            out.put_slice(&buf[..n]);
            buf.advance(n);
            n
        }))?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.close_write();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for PipeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().rd).poll_read(cx, out)
    }
}

impl AsyncWrite for PipeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().wr).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().wr).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().wr).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().wr).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
