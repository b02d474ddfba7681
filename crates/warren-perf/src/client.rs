//! A minimal async AMQP 0-9-1 client: just enough for a load generator.
//!
//! A [`Connection`] performs the handshake (PLAIN, heartbeats off) and the
//! synchronous setup RPCs one at a time. The hot loops then call
//! [`Connection::into_split`] and drive a [`Reader`] and a [`Writer`] themselves,
//! batching many frames per `write` and parsing many frames per `read`.

use std::time::Duration;

use amqp_codec::{
    encode_method_frame, parse_frame, BasicConsume, BasicQos, ChannelOpen, ConfirmSelect,
    ConnectionClose, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue,
    Frame, Method, QueueDeclare, QueueDelete, ShortStr, FRAME_HEARTBEAT, FRAME_METHOD,
    PROTOCOL_HEADER,
};
use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::{ReadHalf, Stream, WriteHalf};
use crate::uri::AmqpUri;

/// Frame size limit before `connection.tune` (the spec's minimum is 4096; 1 MiB is
/// generous and still bounds what a hostile peer can make us buffer).
const FRAME_MAX_HANDSHAKE_BYTES: u32 = 1 << 20;
/// Frame size we ask for when the server offers "no limit" (0).
const FRAME_MAX_DEFAULT_BYTES: u32 = 131_072;
/// Channel limit we ask for when the server offers "no limit" (0).
const CHANNEL_MAX_DEFAULT: u16 = 2047;
/// Bytes reserved in the read buffer before each `read`: large reads amortise the
/// syscall over hundreds of small frames.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// How long a polite `connection.close` waits for `close-ok`.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection in its synchronous (setup) phase.
pub struct Connection {
    /// The socket (Nagle off: we batch ourselves), plain or TLS.
    stream: Stream,
    /// Bytes read but not yet parsed into frames.
    rbuf: BytesMut,
    /// Scratch buffer for outgoing frames.
    wbuf: BytesMut,
    /// Negotiated maximum frame size including the 8 bytes of overhead.
    pub frame_max: u32,
}

/// Encodes one method frame into a fresh buffer.
pub fn method_frame(channel: u16, method: &Method) -> BytesMut {
    let mut b = BytesMut::with_capacity(64);
    encode_method_frame(&mut b, channel, method);
    b
}

/// Turns a `connection.close` / `channel.close` into an error; passes other methods on.
pub fn check_close(m: Method) -> anyhow::Result<Method> {
    match m {
        Method::ConnectionClose(c) => bail!(
            "broker closed the connection: {} {} (class {} method {})",
            c.reply_code,
            c.reply_text,
            c.class_id,
            c.method_id
        ),
        Method::ChannelClose(c) => bail!(
            "broker closed the channel: {} {} (class {} method {})",
            c.reply_code,
            c.reply_text,
            c.class_id,
            c.method_id
        ),
        m => Ok(m),
    }
}

impl Connection {
    /// TCP connect (+ TLS handshake for `amqps://`) + protocol header + start/start-ok (PLAIN) + tune/tune-ok
    /// (heartbeats off) + open/open-ok.
    pub async fn connect(uri: &AmqpUri) -> anyhow::Result<Connection> {
        Connection::over(Stream::connect(uri).await?, uri).await
    }

    /// The AMQP handshake of [`Connection::connect`] on a stream already
    /// open (for example an in-process one); `uri` gives the user and vhost.
    pub async fn over(stream: Stream, uri: &AmqpUri) -> anyhow::Result<Connection> {
        let mut conn = Connection {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: BytesMut::with_capacity(4096),
            frame_max: FRAME_MAX_HANDSHAKE_BYTES,
        };
        conn.stream.write_all(PROTOCOL_HEADER).await?;
        conn.stream.flush().await?;
        match conn.next_method(0).await? {
            Method::ConnectionStart(_) => {}
            m => bail!("expected connection.start, got {}", m.name()),
        }
        let mut caps = FieldTable::new();
        for cap in ["publisher_confirms", "basic.nack", "consumer_cancel_notify"] {
            caps.insert(ShortStr::from(cap), FieldValue::Bool(true));
        }
        let mut props = FieldTable::new();
        props.insert(
            ShortStr::from("product"),
            FieldValue::LongStr(Bytes::from_static(b"warren-perf")),
        );
        props.insert(ShortStr::from("capabilities"), FieldValue::Table(caps));
        let response = format!("\0{}\0{}", uri.user, uri.password);
        conn.send(
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: props,
                mechanism: ShortStr::from("PLAIN"),
                response: Bytes::from(response.into_bytes()),
                locale: ShortStr::from("en_US"),
            }),
        )
        .await?;
        let tune = match conn.next_method(0).await? {
            Method::ConnectionTune(t) => t,
            m => bail!("expected connection.tune, got {}", m.name()),
        };
        let frame_max = match tune.frame_max {
            0 => FRAME_MAX_DEFAULT_BYTES,
            n => n,
        };
        let channel_max = match tune.channel_max {
            0 => CHANNEL_MAX_DEFAULT,
            n => n,
        };
        conn.send(
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat: 0,
            }),
        )
        .await?;
        conn.frame_max = frame_max;
        let vhost = ShortStr::try_from_str(&uri.vhost).context("vhost longer than 255 bytes")?;
        let open = Method::ConnectionOpen(ConnectionOpen {
            virtual_host: vhost,
            reserved_1: ShortStr::from(""),
            reserved_2: false,
        });
        match conn.rpc(0, &open).await? {
            Method::ConnectionOpenOk(_) => Ok(conn),
            m => bail!("expected connection.open-ok, got {}", m.name()),
        }
    }

    /// Writes one method frame.
    pub async fn send(&mut self, channel: u16, method: &Method) -> anyhow::Result<()> {
        self.wbuf.clear();
        encode_method_frame(&mut self.wbuf, channel, method);
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Writes already-encoded frames (e.g. a batch of publishes).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends a synchronous method and returns the reply (the next method on `channel`).
    pub async fn rpc(&mut self, channel: u16, method: &Method) -> anyhow::Result<Method> {
        self.send(channel, method).await?;
        self.next_method(channel).await
    }

    /// Next method frame on `channel` (heartbeats and frames on other channels are
    /// skipped; a close on this channel or the connection is an error).
    async fn next_method(&mut self, channel: u16) -> anyhow::Result<Method> {
        loop {
            let frame = self.next_frame().await?;
            if frame.kind != FRAME_METHOD {
                continue;
            }
            let m = Method::decode(frame.payload)?;
            if frame.channel == channel || matches!(m, Method::ConnectionClose(_)) {
                return check_close(m);
            }
        }
    }

    async fn next_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(f) = parse_frame(&mut self.rbuf, self.frame_max)? {
                if f.kind == FRAME_HEARTBEAT {
                    continue;
                }
                return Ok(f);
            }
            self.rbuf.reserve(4096);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                bail!("broker closed the TCP connection");
            }
        }
    }

    pub async fn open_channel(&mut self, channel: u16) -> anyhow::Result<()> {
        let open = Method::ChannelOpen(ChannelOpen {
            reserved_1: ShortStr::from(""),
        });
        match self.rpc(channel, &open).await? {
            Method::ChannelOpenOk(_) => Ok(()),
            m => bail!("expected channel.open-ok, got {}", m.name()),
        }
    }

    /// Declares a queue; returns the number of messages in it.
    pub async fn declare_queue(
        &mut self,
        channel: u16,
        name: &str,
        durable: bool,
    ) -> anyhow::Result<u32> {
        self.declare_queue_with(channel, name, durable, FieldTable::new())
            .await
    }

    /// queue.declare with arguments (e.g. `x-max-priority`).
    pub async fn declare_queue_with(
        &mut self,
        channel: u16,
        name: &str,
        durable: bool,
        arguments: FieldTable,
    ) -> anyhow::Result<u32> {
        let declare = Method::QueueDeclare(QueueDeclare {
            queue: ShortStr::try_from_str(name).context("queue name longer than 255 bytes")?,
            durable,
            arguments,
            ..Default::default()
        });
        match self.rpc(channel, &declare).await? {
            Method::QueueDeclareOk(ok) => Ok(ok.message_count),
            m => bail!("expected queue.declare-ok, got {}", m.name()),
        }
    }

    pub async fn delete_queue(&mut self, channel: u16, name: &str) -> anyhow::Result<()> {
        let delete = Method::QueueDelete(QueueDelete {
            queue: ShortStr::try_from_str(name).context("queue name longer than 255 bytes")?,
            ..Default::default()
        });
        match self.rpc(channel, &delete).await? {
            Method::QueueDeleteOk(_) => Ok(()),
            m => bail!("expected queue.delete-ok, got {}", m.name()),
        }
    }

    pub async fn qos(&mut self, channel: u16, prefetch_count: u16) -> anyhow::Result<()> {
        let qos = Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count,
            global: false,
        });
        match self.rpc(channel, &qos).await? {
            Method::BasicQosOk(_) => Ok(()),
            m => bail!("expected basic.qos-ok, got {}", m.name()),
        }
    }

    pub async fn confirm_select(&mut self, channel: u16) -> anyhow::Result<()> {
        let select = Method::ConfirmSelect(ConfirmSelect { nowait: false });
        match self.rpc(channel, &select).await? {
            Method::ConfirmSelectOk(_) => Ok(()),
            m => bail!("expected confirm.select-ok, got {}", m.name()),
        }
    }

    /// Starts a consumer; deliveries may follow `consume-ok` immediately, so they
    /// stay in the read buffer that [`Connection::into_split`] hands on.
    pub async fn consume(&mut self, channel: u16, queue: &str, no_ack: bool) -> anyhow::Result<()> {
        let consume = Method::BasicConsume(BasicConsume {
            queue: ShortStr::try_from_str(queue).context("queue name longer than 255 bytes")?,
            no_ack,
            ..Default::default()
        });
        match self.rpc(channel, &consume).await? {
            Method::BasicConsumeOk(_) => Ok(()),
            m => bail!("expected basic.consume-ok, got {}", m.name()),
        }
    }

    /// Polite close: `connection.close`, then wait (bounded) for `close-ok`.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.send(0, &close_method()).await?;
        let wait = async {
            loop {
                let f = self.next_frame().await?;
                if f.kind == FRAME_METHOD && f.channel == 0 {
                    if let Method::ConnectionCloseOk(_) = Method::decode(f.payload)? {
                        return anyhow::Ok(());
                    }
                }
            }
        };
        tokio::time::timeout(CLOSE_TIMEOUT, wait)
            .await
            .context("timed out waiting for connection.close-ok")?
    }

    /// Splits into independently driven halves, keeping any buffered bytes.
    pub fn into_split(self) -> (Reader, Writer) {
        let (rd, wr) = self.stream.into_split();
        (
            Reader {
                rd,
                buf: self.rbuf,
                frame_max: self.frame_max,
            },
            Writer {
                wr,
                frame_max: self.frame_max,
            },
        )
    }
}

/// The `connection.close` a client sends when it is done (200, no failing method).
pub fn close_method() -> Method {
    Method::ConnectionClose(ConnectionClose {
        reply_code: 200,
        reply_text: ShortStr::from("bye"),
        class_id: 0,
        method_id: 0,
    })
}

/// The read half of a connection in its streaming phase.
pub struct Reader {
    /// The socket's read half.
    rd: ReadHalf,
    /// Bytes read but not yet parsed into frames.
    buf: BytesMut,
    /// Negotiated frame size limit, enforced before buffering a payload.
    frame_max: u32,
}

impl Reader {
    /// Reads at least one more byte; an EOF is an error.
    pub async fn fill(&mut self) -> anyhow::Result<()> {
        self.buf.reserve(READ_CHUNK_BYTES);
        if self.rd.read_buf(&mut self.buf).await? == 0 {
            bail!("broker closed the TCP connection");
        }
        Ok(())
    }

    /// The next complete frame already buffered, if any.
    pub fn try_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        Ok(parse_frame(&mut self.buf, self.frame_max)?)
    }

    /// Reads until `connection.close-ok` arrives, discarding everything else.
    pub async fn drain_until_close_ok(&mut self) -> anyhow::Result<()> {
        loop {
            while let Some(f) = self.try_frame()? {
                if f.kind == FRAME_METHOD && f.channel == 0 {
                    match Method::decode(f.payload)? {
                        Method::ConnectionCloseOk(_) => return Ok(()),
                        m => {
                            check_close(m)?;
                        }
                    }
                }
            }
            self.fill().await?;
        }
    }
}

/// The write half of a connection in its streaming phase.
pub struct Writer {
    /// The socket's write half.
    wr: WriteHalf,
    /// Negotiated frame size limit (bodies are split into frames of at most this).
    pub frame_max: u32,
}

impl Writer {
    pub async fn write_all(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.wr.write_all(bytes).await?;
        // A no-op on TCP; over TLS it pushes out any record rustls still holds.
        self.wr.flush().await?;
        Ok(())
    }

    pub async fn send_close(&mut self) -> anyhow::Result<()> {
        self.write_all(&method_frame(0, &close_method())).await
    }
}
