//! Connection opening: protocol header, start/start-ok (authentication),
//! tune/tune-ok, open/open-ok. Runs before the connection joins the core.

use amqp_codec::{
    encode_method_frame, parse_frame, reply, ConnectionClose, ConnectionStart, ConnectionTune,
    FieldTable, FieldValue, Frame, Method, ShortStr, FRAME_HEARTBEAT, FRAME_METHOD,
    FRAME_MIN_SIZE_BYTES, PROTOCOL_HEADER,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::Shared;

/// Lowest channel_max a client may ask for (RabbitMQ's ?CHANNEL_MIN).
const CHANNEL_MIN: u32 = 1;

/// How long RabbitMQ waits before closing the socket on a handshake error
/// it does not answer (its ?SILENT_CLOSE_DELAY, 3 s).
const SILENT_CLOSE_DELAY_MS: u64 = 3_000;

/// RabbitMQ's `validate_negotiated_integer_value`: the client's value in
/// tune-ok must be at least `min` (0 = no limit excepted) and, when the
/// server has a limit (non-zero), neither 0 nor above it.
fn tune_value_ok(client: u32, server: u32, min: u32) -> Result<(), &'static str> {
    if client != 0 && client < min {
        return Err("lower than the minimum allowed value");
    }
    if server != 0 && (client == 0 || client > server) {
        return Err("higher than the maximum allowed value");
    }
    Ok(())
}

/// What the handshake settled.
pub(crate) struct Negotiated {
    pub user: String,
    pub vhost: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_s: u16,
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
    /// start-ok's client properties (for the management API).
    pub client_properties: amqp_codec::FieldTable,
    /// The SASL mechanism used.
    pub mechanism: String,
}

/// Why the handshake ended without a connection.
pub(crate) enum HandshakeEnd {
    /// Just drop the socket (already answered, or nothing to say).
    Drop,
}

/// Reads one frame, honouring `frame_max`; errors end the handshake.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Frame, HandshakeEnd> {
    loop {
        match parse_frame(buf, frame_max) {
            Ok(Some(f)) if f.kind == FRAME_HEARTBEAT => continue,
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(_) => return Err(HandshakeEnd::Drop),
        }
        buf.reserve(4096);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(HandshakeEnd::Drop),
            Ok(_) => {}
        }
    }
}

async fn read_method(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Method, HandshakeEnd> {
    let f = read_frame(rd, buf, frame_max).await?;
    if f.kind != FRAME_METHOD || f.channel != 0 {
        return Err(HandshakeEnd::Drop);
    }
    Method::decode(f.payload).map_err(|_| HandshakeEnd::Drop)
}

async fn send(wr: &mut OwnedWriteHalf, m: &Method) -> Result<(), HandshakeEnd> {
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, 0, m);
    wr.write_all(&out).await.map_err(|_| HandshakeEnd::Drop)
}

/// Sends connection.close and waits briefly for close-ok.
async fn refuse(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    code: u16,
    text: String,
    class_method: (u16, u16),
) -> HandshakeEnd {
    let close = Method::ConnectionClose(ConnectionClose {
        reply_code: code,
        reply_text: ShortStr::from(text),
        class_id: class_method.0,
        method_id: class_method.1,
    });
    if send(wr, &close).await.is_ok() {
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(1), read_method(rd, buf, 0)).await;
    }
    HandshakeEnd::Drop
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(ShortStr::from(cap), FieldValue::Bool(true));
    }
    let s = |v: &str| FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()));
    let mut props = FieldTable::new();
    props.insert("capabilities".into(), FieldValue::Table(caps));
    props.insert("cluster_name".into(), s("warren"));
    props.insert("copyright".into(), s("Copyright (c) the warren authors"));
    props.insert(
        "information".into(),
        s("Licensed under the Apache License 2.0"),
    );
    props.insert(
        "platform".into(),
        s(&format!("Rust ({})", std::env::consts::OS)),
    );
    props.insert("product".into(), s("warren"));
    props.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
    props
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    props
        .get("capabilities")
        .and_then(|c| c.as_table())
        .and_then(|t| t.get(name))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

pub(crate) async fn run(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    shared: &Shared,
    from_loopback: bool,
) -> Result<Negotiated, HandshakeEnd> {
    // Protocol header: anything else gets ours back, as the spec says.
    while buf.len() < 8 {
        buf.reserve(64);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(HandshakeEnd::Drop),
            Ok(_) => {}
        }
    }
    let header = buf.split_to(8);
    // RabbitMQ also accepts the 0-9 and 0-8 headers and speaks 0-9-1 to them.
    let accepted = &header[..] == PROTOCOL_HEADER
        || &header[..] == b"AMQP\x01\x01\x00\x09"
        || &header[..] == b"AMQP\x01\x01\x08\x00";
    if !accepted {
        let _ = wr.write_all(PROTOCOL_HEADER).await;
        let _ = wr.shutdown().await;
        return Err(HandshakeEnd::Drop);
    }
    let cfg = &shared.config;
    let frame_max = cfg.core.frame_size_max_bytes;
    send(
        wr,
        &Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: Bytes::from_static(b"PLAIN AMQPLAIN"),
            locales: Bytes::from_static(b"en_US"),
        }),
    )
    .await?;
    let Method::ConnectionStartOk(start_ok) = read_method(rd, buf, frame_max).await? else {
        return Err(HandshakeEnd::Drop);
    };
    let auth_close = client_capability(&start_ok.client_properties, "authentication_failure_close");
    let consumer_cancel_notify =
        client_capability(&start_ok.client_properties, "consumer_cancel_notify");
    let connection_blocked = client_capability(&start_ok.client_properties, "connection.blocked");
    let user = {
        let core = shared.core.lock();
        core.authenticate(
            start_ok.mechanism.as_str(),
            &start_ok.response,
            from_loopback,
        )
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("authentication failed: {}", e.text);
            if auth_close {
                return Err(refuse(rd, wr, buf, e.code, e.text, (0, 0)).await);
            }
            return Err(HandshakeEnd::Drop);
        }
    };
    send(
        wr,
        &Method::ConnectionTune(ConnectionTune {
            channel_max: cfg.core.channel_max,
            frame_max,
            heartbeat: cfg.heartbeat_s,
        }),
    )
    .await?;
    let Method::ConnectionTuneOk(tune_ok) = read_method(rd, buf, frame_max).await? else {
        return Err(HandshakeEnd::Drop);
    };
    let limits = (
        tune_value_ok(tune_ok.frame_max, frame_max, FRAME_MIN_SIZE_BYTES),
        tune_value_ok(
            u32::from(tune_ok.channel_max),
            u32::from(cfg.core.channel_max),
            CHANNEL_MIN,
        ),
    );
    if let (Err(e), _) | (_, Err(e)) = limits {
        // RabbitMQ 3.10 refuses this ("negotiated channel_max = 0 (no
        // limit) is higher than the maximum allowed value (2047)") but, its
        // error carrying the method, sends no connection.close: the socket
        // just closes after its silent-close delay. So do we.
        tracing::info!(
            "failed to negotiate connection parameters: {e} (frame_max {}, channel_max {})",
            tune_ok.frame_max,
            tune_ok.channel_max
        );
        tokio::time::sleep(std::time::Duration::from_millis(SILENT_CLOSE_DELAY_MS)).await;
        return Err(HandshakeEnd::Drop);
    }
    // 0 is "no limit", possible only when the server has none either.
    let negotiated_frame_max = if tune_ok.frame_max == 0 {
        frame_max
    } else {
        tune_ok.frame_max
    };
    let channel_max = tune_ok.channel_max;
    let Method::ConnectionOpen(open) = read_method(rd, buf, negotiated_frame_max).await? else {
        return Err(HandshakeEnd::Drop);
    };
    let vhost = open.virtual_host.to_string();
    if !shared.core.lock().vhost_exists(&vhost) {
        let text = format!("NOT_ALLOWED - vhost {vhost} not found");
        return Err(refuse(rd, wr, buf, reply::NOT_ALLOWED, text, (10, 40)).await);
    }
    send(wr, &Method::ConnectionOpenOk(Default::default())).await?;
    Ok(Negotiated {
        user,
        vhost,
        frame_max: negotiated_frame_max,
        channel_max,
        heartbeat_s: tune_ok.heartbeat,
        consumer_cancel_notify,
        connection_blocked,
        client_properties: start_ok.client_properties.clone(),
        mechanism: start_ok.mechanism.to_string(),
    })
}
