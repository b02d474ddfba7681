//! `sink`: a fake AMQP 0-9-1 server that completes the handshake, answers the
//! synchronous methods, acks every publish on channels in confirm mode and
//! discards everything else. It measures the generator's own ceiling.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use amqp_codec::{
    encode_method_frame, parse_frame, BasicAck, BasicCancelOk, BasicConsumeOk, BasicQosOk,
    ChannelCloseOk, ChannelOpenOk, ConfirmSelectOk, ConnectionCloseOk, ConnectionOpenOk,
    ConnectionStart, ConnectionTune, ExchangeDeclareOk, FieldTable, Method, QueueBindOk,
    QueueDeclareOk, QueueDeleteOk, QueuePurgeOk, ShortStr, FRAME_METHOD, PROTOCOL_HEADER,
};
use anyhow::bail;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Offered to clients in `connection.tune`.
const FRAME_MAX_BYTES: u32 = 131_072;
const CHANNEL_MAX: u16 = 2047;

/// Totals over all sink connections.
#[derive(Default, Debug)]
pub struct SinkCounters {
    pub published: AtomicU64,
    pub connections: AtomicU64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SinkArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port (0 picks a free one)
    #[arg(long, default_value_t = 5680)]
    pub port: u16,
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind((args.bind.as_str(), args.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let counters = Arc::new(SinkCounters::default());
    let c = counters.clone();
    tokio::spawn(async move {
        let mut last = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = c.published.load(Relaxed);
            if now != last {
                eprintln!("sink: {} msg/s", now - last);
                last = now;
            }
        }
    });
    serve(listener, counters).await
}

/// Accepts connections forever, one task each.
pub async fn serve(listener: TcpListener, counters: Arc<SinkCounters>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        counters.connections.fetch_add(1, Relaxed);
        let counters = counters.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &counters).await {
                eprintln!("sink: connection ended: {e:#}");
            }
        });
    }
}

/// Per-channel state: whether confirms are on, and publishes seen.
#[derive(Default, Clone, Copy)]
struct Chan {
    confirm: bool,
    published: u64,
    acked: u64,
}

async fn handle(mut stream: TcpStream, counters: &SinkCounters) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    if &header != PROTOCOL_HEADER {
        stream.write_all(PROTOCOL_HEADER).await?;
        bail!("unsupported protocol header {header:?}");
    }
    let mut out = BytesMut::with_capacity(4096);
    let start = Method::ConnectionStart(ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: FieldTable::new(),
        mechanisms: Bytes::from_static(b"PLAIN"),
        locales: Bytes::from_static(b"en_US"),
    });
    encode_method_frame(&mut out, 0, &start);
    stream.write_all(&out).await?;
    let mut chans = vec![Chan::default(); usize::from(CHANNEL_MAX) + 1];
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut next_tag = 0u64;
    // Channels with publishes not yet acked in this read (confirm mode only).
    let mut dirty: Vec<u16> = Vec::new();
    loop {
        buf.reserve(256 * 1024);
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        out.clear();
        let mut published = 0;
        while let Some(f) = parse_frame(&mut buf, FRAME_MAX_BYTES)? {
            if f.kind != FRAME_METHOD {
                continue;
            }
            let Some(chan) = chans.get_mut(usize::from(f.channel)) else {
                bail!("channel {} above channel_max", f.channel);
            };
            if f.payload.get(..4) == Some(&[0, 60, 0, 40]) {
                chan.published += 1;
                published += 1;
                if chan.confirm && chan.published == chan.acked + 1 {
                    dirty.push(f.channel);
                }
                continue;
            }
            let m = Method::decode(f.payload)?;
            if let Method::ConfirmSelect(_) = m {
                chan.confirm = true;
            }
            if let Method::ChannelOpen(_) | Method::ChannelClose(_) = m {
                *chan = Chan::default();
            }
            next_tag += 1;
            let Some(reply) = reply_to(m, next_tag) else {
                continue;
            };
            let closing = matches!(reply, Method::ConnectionCloseOk(_));
            encode_method_frame(&mut out, f.channel, &reply);
            if closing {
                stream.write_all(&out).await?;
                return Ok(());
            }
        }
        counters.published.fetch_add(published, Relaxed);
        for ch in dirty.drain(..) {
            let Some(c) = chans.get_mut(usize::from(ch)) else {
                continue;
            };
            if c.confirm && c.published > c.acked {
                let ack = Method::BasicAck(BasicAck {
                    delivery_tag: c.published,
                    multiple: true,
                });
                encode_method_frame(&mut out, ch, &ack);
                c.acked = c.published;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
    }
}

/// The reply a broker owes for a synchronous method (`None`: no reply).
fn reply_to(m: Method, n: u64) -> Option<Method> {
    Some(match m {
        Method::ConnectionStartOk(_) => Method::ConnectionTune(ConnectionTune {
            channel_max: CHANNEL_MAX,
            frame_max: FRAME_MAX_BYTES,
            heartbeat: 0,
        }),
        Method::ConnectionOpen(_) => Method::ConnectionOpenOk(ConnectionOpenOk::default()),
        Method::ConnectionClose(_) => Method::ConnectionCloseOk(ConnectionCloseOk),
        Method::ChannelOpen(_) => Method::ChannelOpenOk(ChannelOpenOk::default()),
        Method::ChannelClose(_) => Method::ChannelCloseOk(ChannelCloseOk),
        Method::QueueDeclare(q) if !q.no_wait => {
            let queue = if q.queue.is_empty() {
                ShortStr::from(format!("amq.gen-sink-{n}"))
            } else {
                q.queue
            };
            Method::QueueDeclareOk(QueueDeclareOk {
                queue,
                message_count: 0,
                consumer_count: 0,
            })
        }
        Method::QueueDelete(q) if !q.no_wait => {
            Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 })
        }
        Method::QueuePurge(q) if !q.no_wait => {
            Method::QueuePurgeOk(QueuePurgeOk { message_count: 0 })
        }
        Method::QueueBind(q) if !q.no_wait => Method::QueueBindOk(QueueBindOk),
        Method::ExchangeDeclare(e) if !e.no_wait => Method::ExchangeDeclareOk(ExchangeDeclareOk),
        Method::BasicQos(_) => Method::BasicQosOk(BasicQosOk),
        Method::BasicConsume(c) if !c.no_wait => {
            let consumer_tag = if c.consumer_tag.is_empty() {
                ShortStr::from(format!("amq.ctag-sink-{n}"))
            } else {
                c.consumer_tag
            };
            Method::BasicConsumeOk(BasicConsumeOk { consumer_tag })
        }
        Method::BasicCancel(c) if !c.no_wait => Method::BasicCancelOk(BasicCancelOk {
            consumer_tag: c.consumer_tag,
        }),
        Method::ConfirmSelect(c) if !c.nowait => Method::ConfirmSelectOk(ConfirmSelectOk),
        _ => return None,
    })
}
