//! A minimal wire-level AMQP 0-9-1 client (frames via amq-protocol) for the
//! things lapin does not expose: server properties and the exact
//! reply-code / reply-text / class-id / method-id of close frames.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, ProtocolVersion, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Broker, WAIT};

pub struct Raw {
    stream: TcpStream,
    pub server_properties: FieldTable,
    pub tune: Option<connection::Tune>,
}

/// What happened during a handshake.
pub enum Handshake {
    Open(Raw),
    /// Server sent connection.close (code, text, class, method).
    Closed(connection::Close),
    /// Server dropped the socket without a close frame.
    Eof,
}

pub fn ss(s: &str) -> ShortString {
    s.into()
}

impl Raw {
    pub async fn connect(b: &Broker) -> Raw {
        let u = b.uri();
        match Self::handshake(
            b,
            &u.authority.userinfo.username,
            &u.authority.userinfo.password,
            &u.vhost,
        )
        .await
        {
            Handshake::Open(r) => r,
            Handshake::Closed(c) => panic!("handshake refused: {c:?}"),
            Handshake::Eof => panic!("handshake: connection dropped"),
        }
    }

    pub async fn handshake(b: &Broker, user: &str, pass: &str, vhost: &str) -> Handshake {
        Self::handshake_tuned(b, user, pass, vhost, 0, None).await
    }

    /// Open a connection as the URL's user, answering tune with `heartbeat`
    /// seconds and `channel_max` (None: accept the server's).
    pub async fn connect_tuned(b: &Broker, heartbeat: u16, channel_max: Option<u16>) -> Raw {
        let u = b.uri();
        match Self::handshake_tuned(
            b,
            &u.authority.userinfo.username,
            &u.authority.userinfo.password,
            &u.vhost,
            heartbeat,
            channel_max,
        )
        .await
        {
            Handshake::Open(r) => r,
            Handshake::Closed(c) => panic!("handshake refused: {c:?}"),
            Handshake::Eof => panic!("handshake: connection dropped"),
        }
    }

    pub async fn handshake_tuned(
        b: &Broker,
        user: &str,
        pass: &str,
        vhost: &str,
        heartbeat: u16,
        channel_max: Option<u16>,
    ) -> Handshake {
        let u = b.uri();
        let stream = tokio::time::timeout(
            WAIT,
            TcpStream::connect((u.authority.host.as_str(), u.authority.port)),
        )
        .await
        .expect("tcp connect timeout")
        .expect("tcp connect");
        let mut raw = Raw {
            stream,
            server_properties: FieldTable::default(),
            tune: None,
        };
        raw.write(&AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1()))
            .await;
        let start = match raw.recv_method(0).await {
            Some(AMQPClass::Connection(connection::AMQPMethod::Start(s))) => s,
            other => panic!("expected connection.start, got {other:?}"),
        };
        assert_eq!((start.version_major, start.version_minor), (0, 9));
        raw.server_properties = start.server_properties.clone();
        let mut caps = FieldTable::default();
        for c in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
        ] {
            caps.insert(c.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString("blackbox-raw".into()),
        );
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        raw.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: ss("PLAIN"),
                response: LongString::from(format!("\0{user}\0{pass}")),
                locale: ss("en_US"),
            })),
        )
        .await;
        let tune = match raw.recv_method(0).await {
            Some(AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            Some(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                return Handshake::Closed(c)
            }
            None => return Handshake::Eof,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        raw.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: channel_max.unwrap_or(tune.channel_max),
                frame_max: tune.frame_max.min(131072),
                heartbeat,
            })),
        )
        .await;
        raw.tune = Some(tune);
        raw.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: ss(vhost),
            })),
        )
        .await;
        match raw.recv_method(0).await {
            Some(AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => Handshake::Open(raw),
            Some(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => Handshake::Closed(c),
            None => Handshake::Eof,
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    async fn write(&mut self, frame: &AMQPFrame) {
        let buf: Vec<u8> = Vec::new();
        let ctx = gen_frame(frame)(WriteContext::from(buf)).expect("encode frame");
        self.stream
            .write_all(&ctx.write)
            .await
            .expect("write frame");
    }

    async fn try_write(&mut self, frame: &AMQPFrame) -> std::io::Result<()> {
        let buf: Vec<u8> = Vec::new();
        let ctx = gen_frame(frame)(WriteContext::from(buf)).expect("encode frame");
        self.stream.write_all(&ctx.write).await
    }

    /// Writes all `frames` with one `write`, so the broker reads them in one
    /// batch (as long as they fit its read buffer).
    pub async fn send_batch(&mut self, frames: &[AMQPFrame]) {
        let mut all = Vec::new();
        for f in frames {
            let ctx = gen_frame(f)(WriteContext::from(Vec::new())).expect("encode frame");
            all.extend_from_slice(&ctx.write);
        }
        self.stream.write_all(&all).await.expect("write frames");
    }

    pub async fn send(&mut self, ch: u16, method: AMQPClass) {
        self.write(&AMQPFrame::Method(ch, method)).await;
    }

    /// Next non-heartbeat frame, or None on EOF. Panics on timeout.
    pub async fn recv(&mut self) -> Option<AMQPFrame> {
        loop {
            let mut head = [0u8; 7];
            let r = tokio::time::timeout(WAIT, self.stream.read_exact(&mut head))
                .await
                .expect("timed out waiting for a frame");
            if r.is_err() {
                return None;
            }
            let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
            let mut full = head.to_vec();
            full.resize(7 + size + 1, 0);
            tokio::time::timeout(WAIT, self.stream.read_exact(&mut full[7..]))
                .await
                .expect("timed out reading frame payload")
                .ok()?;
            assert_eq!(full[7 + size], 0xCE, "bad frame-end octet");
            let (_, frame) = parse_frame(full.as_slice()).expect("parse frame");
            if !matches!(frame, AMQPFrame::Heartbeat(_)) {
                return Some(frame);
            }
        }
    }

    /// Next method frame on channel `ch` (other frames are skipped).
    pub async fn recv_method(&mut self, ch: u16) -> Option<AMQPClass> {
        loop {
            match self.recv().await? {
                AMQPFrame::Method(c, m) if c == ch => return Some(m),
                AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                    return Some(AMQPClass::Connection(connection::AMQPMethod::Close(c)))
                }
                _ => {}
            }
        }
    }

    pub async fn open_channel(&mut self, ch: u16) {
        self.send(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        match self.recv_method(ch).await {
            Some(AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
    }

    /// Expect the server to close channel `ch`; replies close-ok.
    pub async fn expect_channel_close(&mut self, ch: u16) -> channel::Close {
        match self.recv_method(ch).await {
            Some(AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
                self.send(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                )
                .await;
                c
            }
            other => panic!("expected channel.close on {ch}, got {other:?}"),
        }
    }

    /// Expect the server to close the connection; replies close-ok.
    pub async fn expect_connection_close(&mut self) -> connection::Close {
        loop {
            match self.recv().await {
                Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => {
                    // The server may already have dropped the socket (e.g.
                    // while shutting down): close-ok is then best effort.
                    let _ = self
                        .try_write(&AMQPFrame::Method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )),
                        ))
                        .await;
                    return c;
                }
                Some(_) => {}
                None => panic!("connection dropped without connection.close"),
            }
        }
    }

    pub async fn close(mut self) {
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: ss("bye"),
                class_id: 0,
                method_id: 0,
            })),
        )
        .await;
        loop {
            match self.recv().await {
                Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
                ))
                | None => return,
                Some(_) => {}
            }
        }
    }

    pub async fn consume(&mut self, ch: u16, queue: &str, tag: &str, exclusive: bool) {
        self.send(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: ss(queue),
                consumer_tag: ss(tag),
                no_local: false,
                no_ack: false,
                exclusive,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
    }
}

/// (code, text, class, method) of a channel.close.
pub fn cc(c: &channel::Close) -> (u16, String, u16, u16) {
    (
        c.reply_code,
        c.reply_text.to_string(),
        c.class_id,
        c.method_id,
    )
}

/// (code, text, class, method) of a connection.close.
pub fn conn_cc(c: &connection::Close) -> (u16, String, u16, u16) {
    (
        c.reply_code,
        c.reply_text.to_string(),
        c.class_id,
        c.method_id,
    )
}

impl Raw {
    /// Send a content header + one body frame for a preceding basic.publish.
    pub async fn send_content(&mut self, ch: u16, body: &[u8]) {
        for f in content_frames(ch, body) {
            self.write(&f).await;
        }
    }
}

/// The content header (no properties) and, unless empty, the one body
/// frame of a message.
pub fn content_frames(ch: u16, body: &[u8]) -> Vec<AMQPFrame> {
    use amq_protocol::frame::AMQPContentHeader;
    let mut frames = vec![AMQPFrame::Header(
        ch,
        60,
        Box::new(AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: amq_protocol::protocol::BasicProperties::default(),
        }),
    )];
    if !body.is_empty() {
        frames.push(AMQPFrame::Body(ch, body.to_vec()));
    }
    frames
}

/// The frames of a basic.publish with `body` and no properties.
pub fn publish_frames(ch: u16, exchange: &str, key: &str, body: &[u8]) -> Vec<AMQPFrame> {
    let mut frames = vec![AMQPFrame::Method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: ss(exchange),
            routing_key: ss(key),
            mandatory: false,
            immediate: false,
        })),
    )];
    frames.extend(content_frames(ch, body));
    frames
}

/// One read attempt with a deadline.
pub enum Recv {
    Frame(AMQPFrame),
    Eof,
    Timeout,
}

impl Raw {
    /// Next frame, heartbeats included, or EOF, or Timeout after `limit`.
    pub async fn recv_within(&mut self, limit: std::time::Duration) -> Recv {
        let deadline = tokio::time::Instant::now() + limit;
        let mut head = [0u8; 7];
        match tokio::time::timeout_at(deadline, self.stream.read_exact(&mut head)).await {
            Err(_) => return Recv::Timeout,
            Ok(Err(_)) => return Recv::Eof,
            Ok(Ok(_)) => {}
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut full = head.to_vec();
        full.resize(7 + size + 1, 0);
        match tokio::time::timeout(WAIT, self.stream.read_exact(&mut full[7..])).await {
            Err(_) => panic!("timed out reading frame payload"),
            Ok(Err(_)) => return Recv::Eof,
            Ok(Ok(_)) => {}
        }
        assert_eq!(full[7 + size], 0xCE, "bad frame-end octet");
        let (_, frame) = parse_frame(full.as_slice()).expect("parse frame");
        Recv::Frame(frame)
    }

    pub async fn send_heartbeat(&mut self) {
        self.write(&AMQPFrame::Heartbeat(0)).await;
    }
}

impl Raw {
    /// The socket, for tests that drive reading and writing themselves
    /// (nothing is buffered here: `recv` reads exactly one frame at a time).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// One frame from `rd`, heartbeats included; None on EOF.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(rd: &mut R) -> Option<AMQPFrame> {
    let mut head = [0u8; 7];
    rd.read_exact(&mut head).await.ok()?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    let mut full = head.to_vec();
    full.resize(7 + size + 1, 0);
    rd.read_exact(&mut full[7..]).await.ok()?;
    assert_eq!(full[7 + size], 0xCE, "bad frame-end octet");
    let (_, frame) = parse_frame(full.as_slice()).expect("parse frame");
    Some(frame)
}

/// The bytes of `frames`, encoded back to back.
pub fn encode_frames(frames: &[AMQPFrame]) -> Vec<u8> {
    let mut all = Vec::new();
    for f in frames {
        let ctx = gen_frame(f)(WriteContext::from(Vec::new())).expect("encode frame");
        all.extend_from_slice(&ctx.write);
    }
    all
}
