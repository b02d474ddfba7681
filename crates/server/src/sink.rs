//! The per-connection output queue between the core and the writer task.
//!
//! Output normally goes to the writer task (on the writer runtime), which
//! writes it with `writev`. When the writer is idle and nothing is queued, a
//! small chunk is instead written at once by the thread that produced it
//! (write-through): one non-blocking `send` on a socket, or an append to an
//! in-memory pipe. At low rates this saves a cross-thread wake-up per
//! message, which is most of the publish→deliver latency. It never blocks
//! (`MSG_DONTWAIT`; a full pipe takes nothing); whatever it could not write
//! is queued for the writer as usual. Both paths go through `state`'s lock,
//! so bytes never interleave. A pipe is written through only when the
//! connection is quiet (its previous output came long enough ago).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use broker_core::ConnSink;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

struct State {
    /// Encoded frames waiting for the socket, in order.
    chunks: Vec<Bytes>,
    /// The writer took chunks and is writing them.
    writing: bool,
    /// Where write-through goes; `Off` once the connection is closed (set
    /// under this lock, before the socket can be closed, so a stale number
    /// is never written to).
    through: Through,
    /// When output last came (pipe write-through only; see `send`).
    last_send: Instant,
}

/// A connection's write-through target.
pub(crate) enum Through {
    /// None (TLS: encryption stays on the writer).
    Off,
    /// A socket (plain TCP or the in-process socketpair).
    Fd(RawFd),
    /// An in-memory pipe (in-process).
    Pipe(warren_pipe::PipeSender),
}

pub(crate) struct ConnIo {
    state: Mutex<State>,
    /// Largest chunk written through (0 = never); bigger output — a busy
    /// connection's batch — always goes to the writer, so the broker's
    /// thread never does bulk writes.
    write_through_bytes_max: usize,
    /// A pipe's output is written through only this long after the
    /// previous output (`memory_pipe_write_through_gap_us`).
    pipe_gap_min: Duration,
    /// Bytes in `chunks` plus bytes being written right now.
    pending: AtomicUsize,
    pub notify: Notify,
    /// The reader stopped reading because `pending` went over
    /// `connection_outbound_bytes_max`; the writer wakes it (`drained`)
    /// once `pending` is at most half of that.
    pub read_paused: AtomicBool,
    /// Signalled by the writer for a paused reader (see `read_paused`).
    pub drained: Notify,
    /// The reader is done: the writer flushes what is left and stops.
    pub closed: AtomicBool,
    /// Close the socket abortively (RST, no FIN) once flushed: set after
    /// the client's connection.close handshake, as RabbitMQ does (its
    /// default `{linger, {true, 0}}` listen option).
    pub abort_on_close: AtomicBool,
    /// Socket octets for the management API (one add per read or write),
    /// read by the core through `ConnSink::io`.
    pub counters: broker_core::stats::IoCounters,
}

impl ConnIo {
    /// `through`: where small output may go at once (for a pipe, only
    /// `pipe_gap_min` after the previous output).
    pub fn new(through: Through, write_through_bytes_max: usize, pipe_gap_min: Duration) -> ConnIo {
        ConnIo {
            pipe_gap_min,
            counters: broker_core::stats::IoCounters::default(),
            write_through_bytes_max,
            state: Mutex::new(State {
                chunks: Vec::new(),
                writing: false,
                through,
                last_send: Instant::now(),
            }),
            pending: AtomicUsize::new(0),
            notify: Notify::new(),
            read_paused: AtomicBool::new(false),
            drained: Notify::new(),
            closed: AtomicBool::new(false),
            abort_on_close: AtomicBool::new(false),
        }
    }

    /// Takes everything queued so far; the writer owns the socket until
    /// `write_done` if it took anything.
    pub fn take(&self, into: &mut Vec<Bytes>) {
        let mut st = self.state.lock();
        std::mem::swap(&mut st.chunks, into);
        st.writing = !into.is_empty();
    }

    /// The writer finished writing what it took.
    pub fn write_done(&self) {
        self.state.lock().writing = false;
    }

    /// Queues bytes for the writer without waking it (the writer's own
    /// heartbeats).
    pub fn queue(&self, bytes: Bytes) {
        self.pending.fetch_add(bytes.len(), Ordering::AcqRel);
        self.state.lock().chunks.push(bytes);
    }

    /// `n` queued bytes reached the socket (or were dropped with it); wakes
    /// a paused reader once at most `low_bytes` are left.
    pub fn written(&self, n: usize, low_bytes: usize) {
        // SeqCst pairs with `wait_drained`: either it sees the new count,
        // or this sees its pause flag.
        let left = self.pending.fetch_sub(n, Ordering::SeqCst) - n;
        if left <= low_bytes && self.read_paused.load(Ordering::SeqCst) {
            self.drained.notify_one();
        }
    }

    /// Waits until at most `low_bytes` are waiting for the socket (returns
    /// at once if so). The reader calls it when it found more than
    /// `connection_outbound_bytes_max` queued.
    pub async fn wait_drained(&self, low_bytes: usize) {
        self.read_paused.store(true, Ordering::SeqCst);
        while self.pending.load(Ordering::SeqCst) > low_bytes
            && !self.closed.load(Ordering::Acquire)
        {
            self.drained.notified().await;
        }
        self.read_paused.store(false, Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.state.lock().through = Through::Off;
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
        self.drained.notify_one();
    }
}

impl ConnSink for ConnIo {
    fn send(&self, mut bytes: Bytes) {
        let mut st = self.state.lock();
        if st.chunks.is_empty() && !st.writing && bytes.len() <= self.write_through_bytes_max {
            // A pipe takes any output at once, so its writer is never
            // seen busy: the gap since the last output tells a quiet
            // connection (write through: latency) from a busy one (the
            // writer batches it, off this thread: throughput).
            let quiet = match st.through {
                Through::Pipe(_) => {
                    let now = Instant::now();
                    let gap = now.duration_since(st.last_send);
                    st.last_send = now;
                    gap >= self.pipe_gap_min
                }
                _ => true,
            };
            let n = match &st.through {
                Through::Off => 0,
                // SAFETY: `fd` is this connection's open socket: `close`
                // turns it off under this lock before the socket can be
                // closed, and the buffer is valid for `bytes.len()` bytes.
                Through::Fd(fd) => unsafe {
                    libc::send(
                        *fd,
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                }
                .max(0) as usize,
                Through::Pipe(pipe) if quiet => pipe.try_write(&bytes),
                Through::Pipe(_) => 0,
            };
            // Nothing written (EAGAIN, a full pipe or an error): the writer
            // writes it (and meets the error).
            if n > 0 {
                self.counters.sent(n);
                if n >= bytes.len() {
                    return;
                }
                bytes = bytes.slice(n..);
            }
        }
        self.pending.fetch_add(bytes.len(), Ordering::AcqRel);
        st.chunks.push(bytes);
        drop(st);
        self.notify.notify_one();
    }

    fn pending_bytes(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn io(&self) -> Option<&broker_core::stats::IoCounters> {
        Some(&self.counters)
    }
}

/// Closes the sink when the connection task ends, however it ends (an
/// aborted or panicking task included), so write-through never outlives
/// the socket.
pub(crate) struct CloseOnDrop(pub std::sync::Arc<ConnIo>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}
