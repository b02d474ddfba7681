//! Connection opening: protocol header, start/start-ok (authentication),
//! tune/tune-ok, open/open-ok. Runs before the connection joins the core.

use amqp_codec::{
    encode_method_frame, parse_frame, ConnectionClose, ConnectionStart, ConnectionTune, FieldTable,
    FieldValue, Frame, Method, ShortStr, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_MIN_SIZE_BYTES,
    PROTOCOL_HEADER,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use broker_core::password::{login_refused, parse_credentials};
use broker_core::AmqpError;

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

/// What the TLS layer established about the client (TLS listener only).
pub(crate) struct TlsPeer {
    /// The client presented a certificate, verified against the CA bundle.
    pub has_cert: bool,
    /// The user name it stands for (`ssl_cert_login_from`), if it has one.
    pub login: Option<String>,
}

/// SASL mechanisms offered on every connection.
const MECHANISMS: &[u8] = b"PLAIN AMQPLAIN";
/// ... and on a TLS connection with a verified client certificate, as
/// rabbitmq_auth_mechanism_ssl offers EXTERNAL only when there is one.
const MECHANISMS_WITH_EXTERNAL: &[u8] = b"PLAIN AMQPLAIN EXTERNAL";

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
    pub client_properties: broker_core::EncodedTable,
    /// The SASL mechanism used.
    pub mechanism: &'static str,
}

/// Why the handshake ended without a connection.
pub(crate) enum HandshakeEnd {
    /// Just drop the socket (already answered, or nothing to say).
    Drop,
}

/// Reads one frame, honouring `frame_max`; errors end the handshake.
async fn read_frame(
    rd: &mut (impl AsyncRead + Unpin),
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
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Method, HandshakeEnd> {
    let f = read_frame(rd, buf, frame_max).await?;
    if f.kind != FRAME_METHOD || f.channel != 0 {
        return Err(HandshakeEnd::Drop);
    }
    Method::decode(f.payload).map_err(|_| HandshakeEnd::Drop)
}

async fn send(wr: &mut (impl AsyncWrite + Unpin), m: &Method) -> Result<(), HandshakeEnd> {
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, 0, m);
    wr.write_all(&out).await.map_err(|_| HandshakeEnd::Drop)?;
    // A TLS stream may hold the record until flushed (a no-op on TCP).
    wr.flush().await.map_err(|_| HandshakeEnd::Drop)
}

/// Sends connection.close and waits briefly for close-ok.
async fn refuse(
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
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

/// EXTERNAL is offered on TLS connections whose client sent a verified
/// certificate.
fn offers_external(tls: Option<&TlsPeer>) -> bool {
    tls.is_some_and(|t| t.has_cert)
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    props
        .get("capabilities")
        .and_then(|c| c.as_table())
        .and_then(|t| t.get(name))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// PLAIN / AMQPLAIN credentials against the user store: the user's record
/// is read under the core lock, the password hashed and compared after
/// releasing it. Returns the user name.
pub(crate) fn authenticate(
    shared: &Shared,
    mechanism: &str,
    response: &[u8],
    from_loopback: bool,
) -> Result<String, AmqpError> {
    let (user, pass) =
        parse_credentials(mechanism, response).ok_or_else(|| login_refused(mechanism))?;
    let record = shared.core.lock().login_record(&user, from_loopback);
    match record {
        Some(r) if r.verify(&pass) => Ok(user),
        _ => Err(login_refused(mechanism)),
    }
}

pub(crate) async fn run(
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
    buf: &mut BytesMut,
    shared: &Shared,
    from_loopback: bool,
    tls: Option<&TlsPeer>,
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
        let _ = wr.flush().await;
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
            mechanisms: Bytes::from_static(if offers_external(tls) {
                MECHANISMS_WITH_EXTERNAL
            } else {
                MECHANISMS
            }),
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
    let mechanism = start_ok.mechanism.as_str();
    // EXTERNAL: the identity is the verified certificate's, never bytes
    // from the client; without one the mechanism is refused here.
    let response: &[u8] = if mechanism == "EXTERNAL" {
        match tls
            .filter(|_| offers_external(tls))
            .and_then(|t| t.login.as_deref())
        {
            Some(login) => login.as_bytes(),
            None => {
                tracing::warn!(
                    "authentication failed: EXTERNAL without a named, verified client certificate"
                );
                shared
                    .auth_attempts
                    .record(mgmt::AuthProtocol::Amqp091, false);
                let e = login_refused(mechanism);
                if auth_close {
                    return Err(refuse(rd, wr, buf, e.code, e.text, (0, 0)).await);
                }
                return Err(HandshakeEnd::Drop);
            }
        }
    } else {
        &start_ok.response
    };
    let user = if mechanism == "EXTERNAL" {
        // The verified certificate's name: the user must exist (and the
        // loopback rule holds); no password is checked.
        let name = String::from_utf8_lossy(response).into_owned();
        let known = shared
            .core
            .lock()
            .login_record(&name, from_loopback)
            .is_some();
        if known {
            Ok(name)
        } else {
            Err(login_refused(mechanism))
        }
    } else {
        authenticate(shared, mechanism, response, from_loopback)
    };
    shared
        .auth_attempts
        .record(mgmt::AuthProtocol::Amqp091, user.is_ok());
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
    // Limits, the vhost's existence and the user's permission in it (the
    // core checks again when the connection registers).
    let admitted = shared.core.lock().admit(&user, &vhost);
    if let Err(e) = admitted {
        tracing::info!("connection.open refused: {}", e.text);
        return Err(refuse(rd, wr, buf, e.code, e.text, (10, 40)).await);
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
        // Its own exact-size copy: a decoded table slices its frame, and a
        // kept one would pin the handshake's whole read buffer.
        client_properties: broker_core::EncodedTable::new(&start_ok.client_properties),
        // One of the offered mechanisms (any other failed to log in).
        mechanism: match start_ok.mechanism.as_str() {
            "AMQPLAIN" => "AMQPLAIN",
            "EXTERNAL" => "EXTERNAL",
            _ => "PLAIN",
        },
    })
}
