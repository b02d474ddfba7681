//! One client connection: handshake, then a reader loop (this task) and a
//! writer task. The reader batches every frame of one socket read into one
//! trip through the core lock; the writer drains the connection's output
//! queue with as few syscalls as possible and sends heartbeats when idle.
//! Both are generic over the stream (`stream.rs`): plain TCP, or TLS.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use amqp_codec::{
    encode_heartbeat, encode_method_frame, parse_frame, peek_publish, reply, ConnectionClose,
    Frame, Method, ShortStr, FRAME_HEARTBEAT, FRAME_METHOD,
};
use broker_core::{AmqpError, ConnId, ConnInfo, WireOutcome};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::handshake::{self, TlsPeer};
use crate::sink::{CloseOnDrop, ConnIo, Through};
use crate::stream::{split_tls, ConnRead, ConnWrite};
use crate::{cert_login, Shared};

/// A `connections_max` slot, held by a connection task until it ends (a
/// parameter of the task's function, so it drops with the task's state).
pub(crate) type Permit = tokio::sync::OwnedSemaphorePermit;

/// A read smaller than this marks the connection as quiet (small buffer).
const READ_SMALL_BYTES: usize = 4096;

/// How the read loop ended.
enum ReadEnd {
    /// Peer closed, errored or went silent: nothing more to send.
    Gone,
    /// We sent connection.close: wait for close-ok, then close.
    Closing,
    /// The client closed and we answered close-ok: like RabbitMQ, leave
    /// closing the socket to the client (lapin treats an early EOF as an
    /// error), then close ours with a reset (`ConnIo::abort_on_close`).
    ClientClosed,
}

/// The socket's two addresses.
struct Ends {
    /// The client's (None: an in-process connection, which counts as
    /// loopback for `loopback_users`: the client is this process).
    peer: Option<SocketAddr>,
    /// Ours (the listener's address as the client reached it).
    local: Option<SocketAddr>,
}

/// A connection's peer in log lines.
struct PeerName(Option<SocketAddr>);

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("in-process"),
        }
    }
}

/// A plain-TCP connection.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    _permit: Permit,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let (rd, wr) = stream.into_split();
    let fd = wr.as_ref().as_raw_fd();
    let ends = Ends {
        peer: Some(peer),
        local,
    };
    serve(Start::plain(rd, wr, Through::Fd(fd), ends, shared, stop)).await;
}

/// An in-process connection: the broker's end of a Unix socketpair whose
/// other end the application holds (`Node::connect_in_process`). Served
/// exactly like plain TCP, write-through included; no addresses.
pub(crate) async fn run_unix(
    stream: tokio::net::UnixStream,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    _permit: Permit,
) {
    let (rd, wr) = stream.into_split();
    let fd = wr.as_ref().as_raw_fd();
    let ends = Ends {
        peer: None,
        local: None,
    };
    serve(Start::plain(rd, wr, Through::Fd(fd), ends, shared, stop)).await;
}

/// An in-memory in-process connection: the broker's end of a warren-pipe
/// pair (`Node::connect_memory`). As plain TCP (write-through appends to
/// the pipe), without addresses.
pub(crate) async fn run_memory(
    stream: warren_pipe::PipeStream,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    _permit: Permit,
) {
    let (rd, wr) = stream.into_split();
    let through = Through::Pipe(wr.sender());
    let ends = Ends {
        peer: None,
        local: None,
    };
    serve(Start::plain(rd, wr, through, ends, shared, stop)).await;
}

/// A connection on the TLS listener: the TLS handshake (within the same
/// `handshake_timeout_ms` as the AMQP one), then as plain TCP but without
/// write-through (encryption stays on the writer, off the core lock).
pub(crate) async fn run_tls(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    _permit: Permit,
    config: Arc<rustls::ServerConfig>,
    login_from: cert_login::CertLoginFrom,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let deadline = Instant::now() + Duration::from_millis(shared.config.handshake_timeout_ms);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    // Boxed: the handshake state is large and short-lived.
    let tls = match tokio::time::timeout_at(deadline, Box::pin(acceptor.accept(stream))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let session = tls.get_ref().1;
    let cert = session.peer_certificates().and_then(|c| c.first());
    let tls_peer = TlsPeer {
        has_cert: cert.is_some(),
        login: cert.and_then(|c| cert_login::login_name(c, login_from)),
    };
    let (rd, wr) = split_tls(tls);
    let ends = Ends {
        peer: Some(peer),
        local,
    };
    serve(Box::new(Start {
        rd,
        wr,
        write_through: Through::Off,
        tls: Some(tls_peer),
        ends,
        shared,
        stop,
        deadline,
    }))
    .await;
}

/// What a connection starts from. Boxed into `serve` as one pointer: an
/// async fn keeps a slot for each argument beside the locals they move
/// into, for the whole connection (memory per connection).
struct Start<R, W> {
    /// The stream's read half (handshake, then this task's reader loop).
    rd: R,
    /// The write half (handshake, then the writer task).
    wr: W,
    /// Where `sink.rs`'s write-through goes (off for TLS).
    write_through: Through,
    /// What the TLS handshake learned (None: not TLS).
    tls: Option<TlsPeer>,
    /// The socket's addresses.
    ends: Ends,
    /// The node's shared state.
    shared: Arc<Shared>,
    /// Set when the node stops.
    stop: watch::Receiver<bool>,
    /// When the AMQP handshake must be done.
    deadline: Instant,
}

impl<R, W> Start<R, W> {
    /// A connection without TLS (TCP or in-process): write-through to
    /// `through`, the handshake deadline counted from now.
    fn plain(
        rd: R,
        wr: W,
        through: Through,
        ends: Ends,
        shared: Arc<Shared>,
        stop: watch::Receiver<bool>,
    ) -> Box<Start<R, W>> {
        let deadline = Instant::now() + Duration::from_millis(shared.config.handshake_timeout_ms);
        Box::new(Start {
            rd,
            wr,
            write_through: through,
            tls: None,
            ends,
            shared,
            stop,
            deadline,
        })
    }
}

/// An open connection's reader state, kept for the connection's life (and
/// so designed small: read_loop borrows it whole instead of taking its
/// fields as arguments, which would keep each twice).
struct Live<R> {
    /// Closes the sink when this state drops, whatever ends the task;
    /// first, so the sink is closed before the read half goes.
    _close_sink: CloseOnDrop,
    /// The stream's read half.
    rd: R,
    /// Bytes read and not yet handled (empty and unallocated when idle).
    buf: BytesMut,
    /// The node's shared state.
    shared: Arc<Shared>,
    /// Set when the node stops (only the rare waits watch it: the node's
    /// shutdown closes every connection through the core, and the
    /// client's close-ok or the shutdown deadline ends the read).
    stop: watch::Receiver<bool>,
    /// The connection's output queue.
    io: Arc<ConnIo>,
    /// The writer task.
    writer: tokio::task::JoinHandle<()>,
    /// The core's id of the connection.
    id: ConnId,
    /// Negotiated frame_max.
    frame_max: u32,
    /// Negotiated heartbeat (None: off).
    heartbeat: Option<Duration>,
}

/// Handshake, then the reader (this task) and the writer task until the
/// connection ends.
async fn serve<R: ConnRead, W: ConnWrite>(start: Box<Start<R, W>>) {
    // Boxed: the handshake's state is gone once the connection is open.
    let Some(mut live) = Box::pin(open(start)).await else {
        return;
    };
    let end = read_loop(&mut live).await;
    let wait = Duration::from_millis(live.shared.config.close_timeout_ms);
    let (rd, buf) = (&mut live.rd, &mut live.buf);
    match end {
        ReadEnd::Closing => {
            let _ = tokio::time::timeout(
                wait,
                Box::pin(drain_until_close_ok(rd, buf, live.frame_max)),
            )
            .await;
        }
        ReadEnd::ClientClosed => {
            let _ = tokio::time::timeout(wait, Box::pin(drain_until_eof(rd, buf))).await;
            // The client has its close-ok (and has usually closed its end
            // by now): like RabbitMQ, reset rather than FIN, so neither
            // side keeps the connection in TIME_WAIT.
            live.io.abort_on_close.store(true, Ordering::Release);
        }
        ReadEnd::Gone => {}
    }
    {
        let mut core = live.shared.core.lock();
        core.remove_connection(live.id);
        live.shared.after_batch(&mut core);
    }
    live.io.close();
    let _ = (&mut live.writer).await;
    tracing::debug!(conn = live.id, "connection closed");
}

/// The AMQP handshake; then registers the connection with the core and
/// starts its writer. None: the handshake failed or timed out.
async fn open<R: ConnRead, W: ConnWrite>(start: Box<Start<R, W>>) -> Option<Live<R>> {
    let Start {
        mut rd,
        mut wr,
        write_through,
        tls,
        ends: Ends { peer, local },
        shared,
        stop,
        deadline,
    } = *start;
    let from_loopback = peer.is_none_or(|p| p.ip().is_loopback());
    let mut buf = BytesMut::with_capacity(1024);
    let neg = match tokio::time::timeout_at(
        deadline,
        Box::pin(handshake::run(
            &mut rd,
            &mut wr,
            &mut buf,
            &shared,
            from_loopback,
            tls.as_ref(),
        )),
    )
    .await
    {
        Ok(Ok(n)) => n,
        _ => return None,
    };
    if buf.is_empty() {
        // Idle connections hold no read buffer (memory per connection).
        buf = BytesMut::new();
    }
    let io = Arc::new(ConnIo::new(
        write_through,
        shared.config.write_through_bytes_max,
        Duration::from_micros(shared.config.memory_pipe_write_through_gap_us),
    ));
    let close_sink = CloseOnDrop(io.clone());
    let (frame_max, heartbeat_s) = (neg.frame_max, neg.heartbeat_s);
    let info = ConnInfo {
        user: neg.user,
        vhost: neg.vhost.as_str().into(),
        frame_max: neg.frame_max,
        channel_max: neg.channel_max,
        consumer_cancel_notify: neg.consumer_cancel_notify,
        connection_blocked: neg.connection_blocked,
        sink: io.clone(),
        details: broker_core::ConnDetails {
            peer,
            local,
            client_properties: neg.client_properties,
            connected_at_ms: broker_core::delayed::wall_ms(),
            heartbeat_s: neg.heartbeat_s,
            auth_mechanism: neg.mechanism,
        },
    };
    let user = tracing::enabled!(tracing::Level::DEBUG).then(|| info.user.clone());
    let id = shared.core.lock().open_connection(info);
    tracing::debug!(conn = id, peer = %PeerName(peer), user = user.as_deref().unwrap_or(""), vhost = %neg.vhost, "connection open");
    let heartbeat = (heartbeat_s > 0).then(|| Duration::from_secs(u64::from(heartbeat_s)));
    let writer = shared
        .writers
        .spawn(write_loop(wr, io.clone(), shared.clone(), id, heartbeat));
    Some(Live {
        _close_sink: close_sink,
        rd,
        buf,
        shared,
        stop,
        io,
        writer,
        id,
        frame_max,
        heartbeat,
    })
}

/// Waits until the resource alarm is cleared; `Err` if the broker stops.
async fn wait_alarm_cleared(shared: &Shared, stop: &mut watch::Receiver<bool>) -> Result<(), ()> {
    let mut alarm = shared.alarm.subscribe();
    loop {
        let blocked = *alarm.borrow_and_update();
        if !blocked {
            return Ok(());
        }
        tokio::select! {
            r = alarm.changed() => if r.is_err() { return Ok(()) },
            _ = stop.changed() => return Err(()),
        }
    }
}

/// After close-ok went out: discard anything until the client hangs up.
async fn drain_until_eof<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) {
    loop {
        buf.clear();
        buf.reserve(4096);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// After we sent connection.close: discard frames until close-ok or EOF.
async fn drain_until_close_ok<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    frame_max: u32,
) {
    loop {
        while let Ok(Some(f)) = parse_frame(buf, frame_max) {
            if f.channel == 0 && f.kind == FRAME_METHOD {
                if let Ok(Method::ConnectionCloseOk(_)) = Method::decode(f.payload) {
                    return;
                }
            }
        }
        if parse_frame(buf, frame_max).is_err() {
            buf.clear();
        }
        buf.reserve(4096);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Reads and handles frames until the connection ends. Its state while
/// it waits is the idle connection's: one socket-readiness poll and the
/// heartbeat timer (no stop-signal future: see `Live::stop`).
async fn read_loop<R: ConnRead>(live: &mut Live<R>) -> ReadEnd {
    let Live {
        rd,
        buf,
        shared,
        stop,
        io,
        id,
        frame_max,
        heartbeat,
        ..
    } = live;
    let (shared, io, id, frame_max) = (&**shared, &**io, *id, *frame_max);
    // A peer silent for two heartbeat intervals is dead.
    let silence_max = heartbeat
        .map(|h| h * 2)
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let read_size = shared.config.read_buffer_bytes;
    let outbound_max = shared.config.connection_outbound_bytes_max;
    // The handshake may have read frames the client pipelined after
    // connection.open: process those before waiting for more.
    let mut first = !buf.is_empty();
    // Bytes of the last read: a connection that reads little gets a small
    // buffer, and an idle one holds none (memory per idle connection).
    let mut last_read = 0;
    // Bytes read since this task last yielded to the scheduler.
    let mut read_since_yield = 0usize;
    loop {
        if !std::mem::take(&mut first) {
            let want = if last_read >= READ_SMALL_BYTES {
                read_size
            } else {
                READ_SMALL_BYTES * 2
            };
            let read = match tokio::time::timeout(silence_max, rd.read_ready(buf, want)).await {
                Err(_) => {
                    tracing::info!(
                        conn = id,
                        "missed heartbeats from client, timeout: {}s",
                        silence_max.as_secs() / 2
                    );
                    return ReadEnd::Gone;
                }
                Ok(r) => r,
            };
            match read {
                Ok(Some(0)) => {
                    tracing::debug!(conn = id, "peer closed the socket");
                    return ReadEnd::Gone;
                }
                Ok(Some(n)) => {
                    io.counters.received(n);
                    last_read = n;
                    read_since_yield += n;
                }
                Ok(None) => {
                    // Spurious readiness: don't hold a buffer while waiting.
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(conn = id, "read failed: {e}");
                    return ReadEnd::Gone;
                }
            }
        }
        // Handle everything complete in the buffer, under one lock. A
        // publish lying whole in the buffer is read in place (no frames
        // built); everything else goes frame by frame.
        let (end, closing, pause) = {
            let mut core = shared.core.lock();
            let mut end = None;
            let mut frame_error = None;
            loop {
                if core.hold_publish(id, buf) {
                    // Resource alarm: this publish stays unread (below).
                    break;
                }
                if let Some(p) = peek_publish(buf, frame_max) {
                    let outcome = core.publish_from_wire(id, &p);
                    if outcome != WireOutcome::NotTaken {
                        let n = p.len;
                        buf.advance(n);
                        // Only an error can have started closing the connection.
                        if outcome == WireOutcome::Raised && core.is_closing(id) {
                            break;
                        }
                        continue;
                    }
                }
                let f = match parse_frame(buf, frame_max) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        frame_error = Some(AmqpError {
                            code: e.reply_code(),
                            text: e.reply_text_for(buf),
                            class_id: 0,
                            method_id: 0,
                        });
                        break;
                    }
                };
                tracing::trace!(
                    conn = id,
                    kind = f.kind,
                    channel = f.channel,
                    len = f.payload.len(),
                    "frame"
                );
                if f.channel == 0 {
                    match connection_frame(&mut core, id, f) {
                        Ok(None) => {}
                        Ok(Some(e)) => {
                            end = Some(e);
                            break;
                        }
                        Err(err) => {
                            core.close_connection_with(id, err);
                            break;
                        }
                    }
                } else {
                    core.handle_frame(id, f);
                }
                if core.is_closing(id) {
                    break;
                }
            }
            if let Some(err) = frame_error {
                core.close_connection_with(id, err);
            }
            let closing = core.is_closing(id);
            let pause = core.should_pause_reading(id);
            shared.after_batch(&mut core);
            (end, closing, pause)
        };
        if read_since_yield >= shared.config.read_yield_bytes {
            // A busy publisher's socket is always readable, so this task
            // would never give its worker thread up: the writer tasks it
            // woke (sitting in tokio's non-stealable LIFO slot) and other
            // connections would starve. Yield every `read_yield_bytes`.
            read_since_yield = 0;
            Box::pin(tokio::task::yield_now()).await;
        }
        if end.is_none() && !closing && io_pending(io) > outbound_max {
            // The client is not reading what we send (returns, confirms,
            // replies): stop reading it until its output drains, so TCP
            // pushes back on it instead of our memory growing. Boxed: rare.
            tokio::select! {
                _ = Box::pin(io.wait_drained(outbound_max / 2)) => {}
                _ = stop.changed() => return ReadEnd::Closing,
            }
        }
        if pause && !closing {
            // Resource alarm: stop reading this publisher until it clears.
            // Boxed: rarely used, so it should not enlarge every
            // connection's task.
            if Box::pin(wait_alarm_cleared(shared, stop)).await.is_err() {
                return ReadEnd::Closing;
            }
            // The held publish (and what followed it) is processed before
            // anything more is read: the client may be waiting on it.
            first = !buf.is_empty();
        }
        if buf.is_empty() && last_read < READ_SMALL_BYTES {
            // Quiet connection: give the buffers back until data arrives.
            *buf = BytesMut::new();
        }
        if let Some(e) = end {
            return e;
        }
        if closing {
            return ReadEnd::Closing;
        }
    }
}

/// Channel-0 frames after the handshake: heartbeats and connection.close.
fn connection_frame(
    core: &mut broker_core::Broker,
    id: ConnId,
    f: Frame,
) -> Result<Option<ReadEnd>, AmqpError> {
    match f.kind {
        FRAME_HEARTBEAT => Ok(None),
        FRAME_METHOD => {
            let m = Method::decode(f.payload).map_err(|e| AmqpError {
                code: e.reply_code(),
                text: e.reply_text(),
                class_id: 0,
                method_id: 0,
            })?;
            match m {
                Method::ConnectionClose(_) => {
                    core.client_closed(id);
                    Ok(Some(ReadEnd::ClientClosed))
                }
                Method::ConnectionCloseOk(_) => Ok(Some(ReadEnd::Gone)),
                Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_) => Ok(None),
                // RabbitMQ 3.10's internal backend accepts any new secret
                // for a PLAIN login (its `update_state` keeps the user as
                // is) and answers update-secret-ok; checked with pika
                // against it (tests/python/test_access.py).
                Method::ConnectionUpdateSecret(_) => {
                    core.send_raw(id, |out| {
                        encode_method_frame(
                            out,
                            0,
                            &Method::ConnectionUpdateSecretOk(Default::default()),
                        )
                    });
                    Ok(None)
                }
                other => Err(AmqpError {
                    code: reply::COMMAND_INVALID,
                    text: format!(
                        "COMMAND_INVALID - unexpected method {} on channel 0",
                        other.name()
                    ),
                    class_id: other.class_id(),
                    method_id: other.method_id(),
                }),
            }
        }
        _ => Err(AmqpError {
            code: reply::UNEXPECTED_FRAME,
            text: format!("UNEXPECTED_FRAME - type {}, all octets = <<>>", f.kind),
            class_id: 0,
            method_id: 0,
        }),
    }
}

async fn write_loop<W: ConnWrite>(
    mut wr: W,
    io: Arc<ConnIo>,
    shared: Arc<Shared>,
    id: ConnId,
    heartbeat: Option<Duration>,
) {
    let mut chunks: Vec<Bytes> = Vec::new();
    let idle_max = heartbeat.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let write_max = shared.config.core.write_buffer_bytes_max;
    let outbound_low = shared.config.connection_outbound_bytes_max / 2;
    loop {
        let closed = io.closed.load(Ordering::Acquire);
        io.take(&mut chunks);
        if chunks.is_empty() {
            if closed {
                break;
            }
            match tokio::time::timeout(idle_max, io.notify.notified()).await {
                Ok(()) => continue,
                Err(_) => {
                    // Through the queue, like all output, so it cannot
                    // interleave with a write-through.
                    let mut hb = BytesMut::with_capacity(8);
                    encode_heartbeat(&mut hb);
                    io.queue(hb.freeze());
                    continue;
                }
            }
        }
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let before = io_pending(&io);
        if write_all_vectored(&mut wr, &mut chunks).await.is_err() {
            io.written(total, outbound_low);
            // The reader notices the dead socket; keep draining so the core's
            // view of pending bytes stays right until then.
            while !io.closed.load(Ordering::Acquire) {
                io.take(&mut chunks);
                let t: usize = chunks.iter().map(|c| c.len()).sum();
                chunks.clear();
                io.written(t, outbound_low);
                io.notify.notified().await;
            }
            break;
        }
        io.counters.sent(total);
        io.written(total, outbound_low);
        io.write_done();
        if before >= write_max / 2 {
            // The core may have held deliveries back for this socket.
            let mut core = shared.core.lock();
            core.on_writable(id);
            shared.after_batch(&mut core);
        }
    }
    // Everything queued is written: FIN, or RST after the client's close.
    wr.finish(io.abort_on_close.load(Ordering::Acquire)).await;
}

fn io_pending(io: &ConnIo) -> usize {
    use broker_core::ConnSink;
    io.pending_bytes()
}

/// Writes all chunks with writev, coping with partial writes; a buffered
/// (TLS) stream gets all of them in one call per 64 chunks, then a flush.
async fn write_all_vectored<W: ConnWrite>(
    wr: &mut W,
    chunks: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut start = 0;
    while start < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks[start..]
            .iter()
            .take(64)
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && start < chunks.len() {
            let len = chunks[start].len();
            if n >= len {
                n -= len;
                start += 1;
            } else {
                let rest = chunks[start].slice(n..);
                chunks[start] = rest;
                n = 0;
            }
        }
    }
    chunks.clear();
    if W::BUFFERED {
        wr.flush().await?;
    }
    Ok(())
}

#[allow(dead_code)]
fn close_method(code: u16, text: &str) -> Method {
    Method::ConnectionClose(ConnectionClose {
        reply_code: code,
        reply_text: ShortStr::from(text),
        class_id: 0,
        method_id: 0,
    })
}

#[cfg(test)]
mod task_size_tests {
    //! Every idle connection keeps its two tasks' state for its whole life:
    //! their sizes are part of the memory per connection, designed here.

    /// Bytes of the future `f` returns, without calling it.
    fn future_bytes<A, B, C, D, E, Fut, F: FnOnce(A, B, C, D, E) -> Fut>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn connection_tasks_stay_small() {
        let reader = future_bytes(&super::run);
        let writer = future_bytes(&super::write_loop::<tokio::net::tcp::OwnedWriteHalf>);
        println!("connection task {reader} B, writer task {writer} B");
        assert!(
            reader <= 800,
            "the connection task's future grew to {reader} B"
        );
        assert!(writer <= 512, "the writer task's future grew to {writer} B");
    }
}
