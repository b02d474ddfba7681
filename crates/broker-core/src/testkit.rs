//! In-process harness for testing the core without sockets or sleeps: a
//! [`Broker`] with an in-memory arena, a recording store whose syncs the test
//! triggers, and a clock the test advances. Clients feed the bytes a real
//! client would write — run through the same batch loop as the server's
//! reader (publish fast path first, then frame by frame) — and read back the
//! frames the core would send, decoded.

use std::cell::Cell;
use std::sync::Arc;

use amqp_codec::{
    encode_body_frames, encode_content_header_frame, encode_method_frame, parse_frame,
    peek_publish, BasicProperties, ContentHeader, FieldTable, Method, ShortStr, FRAME_BODY,
    FRAME_HEADER, FRAME_METHOD,
};
use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;

use crate::arena::MemArena;
use crate::persist::{
    Appended, BindingDef, ExchangeDef, MessageId, MessageRecord, PersistError, Persistence,
    QueueDef, Seq, StoredAt,
};
use crate::{Broker, ConnId, ConnInfo, ConnSink, CoreConfig, WireOutcome};

thread_local! {
    /// The virtual clock of a test thread that built a [`Core`]: it moves
    /// only when the test advances it, so TTL tests are deterministic.
    static CLOCK_MS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Advances this thread's test clock by `ms` without ticking any core (the
/// clock is shared by every [`Core`] of the thread: a test driving two
/// cores moves it once, then ticks each with [`Core::tick`]).
pub fn advance_clock_ms(ms: u64) {
    CLOCK_MS.with(|c| c.set(Some(c.get().unwrap_or(0) + ms)));
}

/// The test clock of this thread, if a [`Core`] set one (tests only).
pub(crate) fn test_clock_ms() -> Option<u64> {
    CLOCK_MS.with(Cell::get)
}

/// Output of one connection, as the writer would see it.
#[derive(Default)]
pub struct RecordingSink {
    /// Bytes the core handed over and the test has not read yet.
    buf: Mutex<BytesMut>,
    /// Bytes reported as not yet written to the socket (a slow peer).
    unwritten_bytes: Mutex<usize>,
}

impl ConnSink for RecordingSink {
    fn send(&self, bytes: Bytes) {
        self.buf.lock().extend_from_slice(&bytes);
    }
    fn pending_bytes(&self) -> usize {
        *self.unwritten_bytes.lock()
    }
}

/// What the recording store saw, shared with the test.
#[derive(Default, Debug)]
pub struct StoreLog {
    /// Last sequence number handed out.
    pub seq: Seq,
    /// Message ids handed out.
    pub next_id: MessageId,
    /// (queue, message id) pairs recorded and not yet removed.
    pub live: Vec<(String, MessageId)>,
    /// Durable queues recorded.
    pub queues: Vec<String>,
    /// Access records (users, vhosts, permissions, limits), in order.
    pub access: Vec<crate::access_state::AccessRecord>,
    /// Reads of message records (`Persistence::read_message`) served.
    pub reads: u64,
    /// Refuse new messages, as the real store does while paused on a full
    /// disk (everything else is still accepted).
    pub paused: bool,
    /// Message records appended with `append_copy`.
    pub copies: u64,
}

/// A store that records what it is asked to keep; nothing is durable until
/// the test calls [`Core::sync`].
#[derive(Default)]
pub struct RecordingStore {
    /// Shared with the test.
    pub log: Arc<Mutex<StoreLog>>,
    /// Contents of the messages some queue still holds, by id (`None` once
    /// released by every queue, so a read after that fails as it would
    /// on a deleted segment). The `StoredAt` offset is the id.
    records: Vec<Option<crate::persist::OwnedMessage>>,
}

impl RecordingStore {
    fn bump(&self) -> Seq {
        let mut l = self.log.lock();
        l.seq += 1;
        l.seq
    }
}

impl Persistence for RecordingStore {
    fn put_access(&mut self, rec: &crate::access_state::AccessRecord) -> Result<Seq, PersistError> {
        self.log.lock().access.push(rec.clone());
        Ok(self.bump())
    }
    fn put_exchange(&mut self, _: &ExchangeDef) -> Result<Seq, PersistError> {
        Ok(self.bump())
    }
    fn delete_exchange(&mut self, _: &str, _: &str) -> Result<Seq, PersistError> {
        Ok(self.bump())
    }
    fn put_queue(&mut self, q: &QueueDef) -> Result<Seq, PersistError> {
        self.log.lock().queues.push(q.name.to_string());
        Ok(self.bump())
    }
    fn delete_queue(&mut self, _: &str, name: &str) -> Result<Seq, PersistError> {
        {
            // Like the real store: the delete releases every hold.
            let mut l = self.log.lock();
            l.queues.retain(|q| q != name);
            l.live.retain(|(q, _)| q != name);
            for (id, r) in self.records.iter_mut().enumerate() {
                if r.is_some() && !l.live.iter().any(|(_, i)| *i as usize == id) {
                    *r = None;
                }
            }
        }
        Ok(self.bump())
    }
    fn put_binding(&mut self, _: &BindingDef) -> Result<Seq, PersistError> {
        Ok(self.bump())
    }
    fn delete_binding(&mut self, _: &BindingDef) -> Result<Seq, PersistError> {
        Ok(self.bump())
    }
    fn append_message(
        &mut self,
        _: &str,
        _: &MessageRecord<'_>,
        queues: &[&str],
    ) -> Result<(MessageId, Seq), PersistError> {
        let mut l = self.log.lock();
        if l.paused {
            return Err(PersistError::Io("store paused, disk full (test)".into()));
        }
        l.next_id += 1;
        let id = l.next_id;
        for q in queues {
            l.live.push((q.to_string(), id));
        }
        l.seq += 1;
        Ok((id, l.seq))
    }
    fn append(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        _due_ms: Option<u64>,
    ) -> Result<Appended, PersistError> {
        let (id, seq) = self.append_message(vhost, msg, queues)?;
        let at = u32::try_from(id).ok().map(|offset| {
            let slot = offset as usize;
            if self.records.len() <= slot {
                self.records.resize(slot + 1, None);
            }
            self.records[slot] = Some(crate::persist::OwnedMessage {
                exchange: msg.exchange.to_owned(),
                routing_key: msg.routing_key.to_owned(),
                properties: Bytes::copy_from_slice(msg.properties),
                body: Bytes::copy_from_slice(msg.body),
            });
            StoredAt { segment: 0, offset }
        });
        Ok(Appended { id, seq, at })
    }
    fn refuses_messages(&self) -> bool {
        self.log.lock().paused
    }
    fn append_copy(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: Option<u64>,
    ) -> Result<Appended, PersistError> {
        let a = self.append(vhost, msg, queues, due_ms)?;
        self.log.lock().copies += 1;
        Ok(a)
    }
    fn read_message(&mut self, at: StoredAt) -> Option<MessageRecord<'_>> {
        self.log.lock().reads += 1;
        self.records
            .get(at.offset as usize)?
            .as_ref()
            .map(|m| m.as_record())
    }
    fn remove_message(&mut self, _: &str, queue: &str, id: MessageId) -> Result<Seq, PersistError> {
        let mut l = self.log.lock();
        l.live.retain(|(q, i)| !(q == queue && *i == id));
        if !l.live.iter().any(|(_, i)| *i == id) {
            if let Some(r) = self.records.get_mut(id as usize) {
                *r = None;
            }
        }
        l.seq += 1;
        Ok(l.seq)
    }
    fn last_seq(&self) -> Seq {
        self.log.lock().seq
    }
}

/// A decoded frame the core sent to a client.
#[allow(clippy::large_enum_variant)] // test-only; clarity over size
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A method without content.
    Method(u16, Method),
    /// basic.deliver / get-ok / return with its properties and body.
    Content {
        channel: u16,
        method: Method,
        properties: BasicProperties,
        body: Bytes,
    },
}

impl Out {
    /// The method, with or without content.
    pub fn method(&self) -> &Method {
        match self {
            Out::Method(_, m) | Out::Content { method: m, .. } => m,
        }
    }
    /// The body of a content frame set ("" for a plain method).
    pub fn body(&self) -> &[u8] {
        match self {
            Out::Content { body, .. } => body,
            Out::Method(..) => b"",
        }
    }
}

/// One client connection to the in-process core.
pub struct Client {
    /// The core's id for this connection.
    pub id: ConnId,
    sink: Arc<RecordingSink>,
    /// Content methods waiting for their header/body frames.
    partial: Option<(u16, Method, Option<ContentHeader>, BytesMut)>,
}

impl Client {
    /// Reports `n` bytes as unwritten on the socket (0 = a fast reader).
    pub fn set_unwritten_bytes(&self, n: usize) {
        *self.sink.unwritten_bytes.lock() = n;
    }

    /// Everything the core sent since the last call, decoded.
    pub fn recv(&mut self) -> Vec<Out> {
        let mut buf = std::mem::take(&mut *self.sink.buf.lock());
        let mut out = Vec::new();
        while let Some(f) = parse_frame(&mut buf, u32::MAX).expect("core sent a malformed frame") {
            match f.kind {
                FRAME_METHOD => {
                    let m = Method::decode(f.payload).expect("core sent an undecodable method");
                    if matches!(
                        m,
                        Method::BasicDeliver(_) | Method::BasicGetOk(_) | Method::BasicReturn(_)
                    ) {
                        assert!(self.partial.is_none(), "content method before body");
                        self.partial = Some((f.channel, m, None, BytesMut::new()));
                    } else {
                        assert!(self.partial.is_none(), "method inside content");
                        out.push(Out::Method(f.channel, m));
                    }
                }
                FRAME_HEADER => {
                    let h = ContentHeader::decode(f.payload).expect("bad content header");
                    let p = self.partial.as_mut().expect("header without method");
                    p.2 = Some(h);
                }
                FRAME_BODY => {
                    let p = self.partial.as_mut().expect("body without method");
                    p.3.extend_from_slice(&f.payload);
                }
                k => panic!("core sent frame type {k}"),
            }
            let complete = self.partial.as_ref().is_some_and(|(_, _, h, b)| {
                h.as_ref().is_some_and(|h| h.body_size == b.len() as u64)
            });
            if complete {
                let Some((channel, method, Some(h), body)) = self.partial.take() else {
                    unreachable!()
                };
                let properties =
                    BasicProperties::decode(&h.raw_properties).expect("bad properties");
                out.push(Out::Content {
                    channel,
                    method,
                    properties,
                    body: body.freeze(),
                });
            }
        }
        assert!(buf.is_empty(), "core sent a partial frame");
        out
    }
}

/// Bytes a client writes: methods and whole publishes, concatenated.
#[derive(Default, Clone)]
pub struct Wire(pub BytesMut);

impl Wire {
    pub fn new() -> Wire {
        Wire::default()
    }
    /// Appends a method frame.
    pub fn method(mut self, ch: u16, m: Method) -> Wire {
        encode_method_frame(&mut self.0, ch, &m);
        self
    }
    /// Appends basic.publish + header + body (bodies split at `frame_max`).
    pub fn publish(
        mut self,
        ch: u16,
        exchange: &str,
        routing_key: &str,
        props: &BasicProperties,
        body: &[u8],
    ) -> Wire {
        self.0 = publish_frames(self.0, ch, exchange, routing_key, false, props, body);
        self
    }
    /// As `publish`, with the mandatory flag set.
    pub fn publish_mandatory(
        mut self,
        ch: u16,
        exchange: &str,
        routing_key: &str,
        props: &BasicProperties,
        body: &[u8],
    ) -> Wire {
        self.0 = publish_frames(self.0, ch, exchange, routing_key, true, props, body);
        self
    }
    /// The frames written so far, one `Wire` each, so a test can feed them
    /// in separate socket reads (e.g. a publish split between its frames).
    pub fn frames(self) -> Vec<Wire> {
        let mut buf = self.0;
        let mut out = Vec::new();
        while buf.len() >= 7 {
            let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
            out.push(Wire(buf.split_to((7 + size + 1).min(buf.len()))));
        }
        assert!(buf.is_empty(), "a partial frame in a Wire");
        out
    }
}

fn publish_frames(
    mut buf: BytesMut,
    ch: u16,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    props: &BasicProperties,
    body: &[u8],
) -> BytesMut {
    encode_method_frame(
        &mut buf,
        ch,
        &Method::BasicPublish(amqp_codec::BasicPublish {
            exchange: ShortStr::from(exchange),
            routing_key: ShortStr::from(routing_key),
            mandatory,
            ..Default::default()
        }),
    );
    let mut raw = BytesMut::new();
    props.encode(&mut raw);
    encode_content_header_frame(&mut buf, ch, 60, body.len() as u64, &raw);
    encode_body_frames(&mut buf, ch, body, FRAME_MAX);
    buf
}

/// frame_max the harness negotiates for every connection.
pub const FRAME_MAX: u32 = 131_072;

/// The core under test.
pub struct Core {
    pub broker: Broker,
    /// What the store was asked to keep.
    pub store: Arc<Mutex<StoreLog>>,
    /// Use the publish fast path for whole publishes, as the server does.
    pub fast_path: bool,
    /// Publishes the fast path took (so a test can show it ran).
    pub fast_path_taken: usize,
    /// Bytes the reader keeps unread for a connection the alarm blocked.
    pub held: Vec<(ConnId, BytesMut)>,
}

impl Default for Core {
    fn default() -> Self {
        Core::new(CoreConfig::default())
    }
}

impl Core {
    pub fn new(config: CoreConfig) -> Core {
        CLOCK_MS.with(|c| c.set(Some(c.get().unwrap_or(1_000))));
        let store = RecordingStore::default();
        let log = store.log.clone();
        let mut broker = Broker::new(
            config,
            Box::new(crate::persist::NoPersistence::default()),
            Box::new(MemArena::new(1 << 20)),
        );
        broker.set_persistence(Box::new(store));
        Core {
            broker,
            store: log,
            fast_path: true,
            fast_path_taken: 0,
            held: Vec::new(),
        }
    }

    /// A connected client (handshake done: user guest, vhost "/").
    pub fn connect(&mut self) -> Client {
        self.connect_unchecked("guest", "/")
    }

    /// A client of `user` on `vhost`, admitted as the server's
    /// connection.open admits it (limits, vhost, permission): the refusal
    /// the client would get otherwise.
    pub fn connect_as(&mut self, user: &str, vhost: &str) -> Result<Client, crate::AmqpError> {
        self.broker.admit(user, vhost)?;
        Ok(self.connect_unchecked(user, vhost))
    }

    /// The server's login check: the stored record, verified.
    pub fn login(&self, user: &str, password: &str, from_loopback: bool) -> bool {
        self.broker
            .login_record(user, from_loopback)
            .is_some_and(|r| r.verify(password))
    }

    /// A client registered without the connection.open checks (the core
    /// still applies its own at registration).
    pub fn connect_unchecked(&mut self, user: &str, vhost: &str) -> Client {
        let sink = Arc::new(RecordingSink::default());
        let id = self.broker.open_connection(ConnInfo {
            user: user.into(),
            vhost: Arc::from(vhost),
            frame_max: FRAME_MAX,
            channel_max: 2047,
            consumer_cancel_notify: true,
            connection_blocked: true,
            sink: sink.clone(),
            details: Default::default(),
        });
        self.broker.flush();
        Client {
            id,
            sink,
            partial: None,
        }
    }

    /// Feeds what `client` wrote, as one socket read, then flushes.
    pub fn input(&mut self, client: &Client, wire: Wire) {
        let held = self.held.iter().position(|(id, _)| *id == client.id);
        let mut buf = match held {
            Some(i) => {
                let (_, mut b) = self.held.swap_remove(i);
                b.extend_from_slice(&wire.0);
                b
            }
            None => wire.0,
        };
        if !self.broker.should_pause_reading(client.id) {
            self.batch(client.id, &mut buf);
        }
        self.broker.flush();
        if self.broker.should_pause_reading(client.id) {
            // Blocked by the alarm: the reader keeps the rest unread.
            if !buf.is_empty() {
                self.held.push((client.id, buf));
            }
            return;
        }
        assert!(buf.is_empty(), "harness fed a partial frame");
    }

    /// What the server's reader does once the alarm clears: processes the
    /// bytes it held for `client`.
    pub fn resume(&mut self, client: &Client) {
        self.input(client, Wire(BytesMut::new()));
    }

    /// The server reader's batch loop (channel 0: connection.close only;
    /// the reader stops reading after it, so the rest of the read is
    /// dropped).
    fn batch(&mut self, id: ConnId, buf: &mut BytesMut) {
        loop {
            if self.broker.hold_publish(id, buf) {
                break;
            }
            if self.fast_path {
                if let Some(p) = peek_publish(buf, FRAME_MAX) {
                    let outcome = self.broker.publish_from_wire(id, &p);
                    if outcome != WireOutcome::NotTaken {
                        self.fast_path_taken += 1;
                        let n = p.len;
                        buf.advance(n);
                        if outcome == WireOutcome::Raised && self.broker.is_closing(id) {
                            break;
                        }
                        continue;
                    }
                }
            }
            match parse_frame(buf, FRAME_MAX) {
                Ok(Some(f)) if f.channel == 0 => {
                    // The server's reader handles channel 0 itself; the
                    // harness feeds only connection.close there.
                    let m = Method::decode(f.payload).expect("harness fed a bad method");
                    assert!(
                        matches!(m, Method::ConnectionClose(_)),
                        "the harness feeds only connection.close on channel 0: {m:?}"
                    );
                    self.broker.client_closed(id);
                    buf.clear();
                    break;
                }
                Ok(Some(f)) => self.broker.handle_frame(id, f),
                Ok(None) => break,
                Err(e) => panic!("harness fed a bad frame: {e:?}"),
            }
            if self.broker.is_closing(id) {
                buf.clear();
                break;
            }
        }
    }

    /// Ready messages in queue `name` of vhost "/", if it exists.
    pub fn queue_depth(&self, name: &str) -> Option<u32> {
        let v = self.broker.topology.vhosts.get("/")?;
        v.queues.get(name).map(|q| q.message_count())
    }

    /// Makes everything stored so far durable (the sync thread's job).
    pub fn sync(&mut self) {
        let seq = self.store.lock().seq;
        self.broker.on_synced(seq);
        self.broker.flush();
    }

    /// Advances the clock by `ms` and runs the periodic tick.
    pub fn advance_ms(&mut self, ms: u64) {
        advance_clock_ms(ms);
        self.tick();
    }

    /// Runs the periodic tick at the current test-clock time.
    pub fn tick(&mut self) {
        self.broker.tick();
        self.broker.flush();
    }

    /// The client's connection went away (socket closed).
    pub fn disconnect(&mut self, client: Client) {
        self.broker.remove_connection(client.id);
        self.broker.flush();
    }

    /// Opens channel `ch` on `client` and checks the open-ok.
    pub fn open_channel(&mut self, client: &mut Client, ch: u16) {
        self.input(
            client,
            Wire::new().method(ch, Method::ChannelOpen(Default::default())),
        );
        let got = client.recv();
        assert_eq!(
            got,
            vec![Out::Method(ch, Method::ChannelOpenOk(Default::default()))]
        );
    }

    /// Sends one method and returns what came back.
    pub fn call(&mut self, client: &mut Client, ch: u16, m: Method) -> Vec<Out> {
        self.input(client, Wire::new().method(ch, m));
        client.recv()
    }

    /// Declares a queue with `args` and checks the declare-ok.
    pub fn declare_queue(&mut self, client: &mut Client, ch: u16, name: &str, args: FieldTable) {
        let got = self.call(
            client,
            ch,
            Method::QueueDeclare(amqp_codec::QueueDeclare {
                queue: ShortStr::from(name),
                arguments: args,
                ..Default::default()
            }),
        );
        assert!(
            matches!(got.as_slice(), [Out::Method(_, Method::QueueDeclareOk(_))]),
            "declare {name}: {got:?}"
        );
    }

    /// Starts a consumer on `queue` with tag `tag`; returns the deliveries
    /// that followed the consume-ok at once.
    pub fn consume(
        &mut self,
        client: &mut Client,
        ch: u16,
        queue: &str,
        tag: &str,
        no_ack: bool,
    ) -> Vec<Out> {
        let got = self.call(
            client,
            ch,
            Method::BasicConsume(amqp_codec::BasicConsume {
                queue: ShortStr::from(queue),
                consumer_tag: ShortStr::from(tag),
                no_ack,
                ..Default::default()
            }),
        );
        assert!(
            matches!(got.first(), Some(Out::Method(_, Method::BasicConsumeOk(_)))),
            "consume {queue}: {got:?}"
        );
        got.into_iter().skip(1).collect()
    }
}

/// Bodies of the deliveries in `outs`, in order.
pub fn bodies(outs: &[Out]) -> Vec<String> {
    outs.iter()
        .filter(|o| matches!(o, Out::Content { .. }))
        .map(|o| String::from_utf8_lossy(o.body()).into_owned())
        .collect()
}

/// Persistent-message properties.
pub fn persistent() -> BasicProperties {
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
}
