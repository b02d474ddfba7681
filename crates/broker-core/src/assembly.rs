//! Frames of an open channel: content assembly (method → header → body;
//! anything else mid-content is UNEXPECTED_FRAME), channel open/close-ok
//! state, then the method handlers (`ops/channel.rs`).

use amqp_codec::{
    encode_method_frame, ContentHeader, Frame, Method, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT,
    FRAME_METHOD,
};
use bytes::{Bytes, BytesMut};

use crate::broker::Broker;
use crate::error::{no_connection, AmqpError};
use crate::session::Channel;
use crate::ConnId;

/// Content being assembled from method, header and body frames.
pub(crate) enum Assembly {
    /// No content in progress: a method frame is expected.
    Idle,
    /// basic.publish arrived: its content header is expected.
    Header(amqp_codec::BasicPublish),
    /// The header arrived: body frames until `received` reaches the
    /// header's body size.
    Body {
        /// The method.
        publish: amqp_codec::BasicPublish,
        /// The content header.
        header: ContentHeader,
        /// Body frames so far.
        parts: Vec<Bytes>,
        /// Bytes in `parts`.
        received: u64,
    },
}

impl Broker {
    /// Handles one frame on a channel other than 0.
    pub(crate) fn frame(&mut self, conn: ConnId, frame: Frame) {
        let Some(c) = self.sessions.conns.get(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        self.sessions.mark_dirty(conn);
        let ch = frame.channel;
        if let Err(err) = self.handle_frame_inner(conn, frame) {
            self.raise(conn, ch, err);
        }
    }

    fn handle_frame_inner(&mut self, conn: ConnId, frame: Frame) -> Result<(), AmqpError> {
        let ch_id = frame.channel;
        match frame.kind {
            FRAME_METHOD => {
                let method = Method::decode(frame.payload).map_err(|e| AmqpError {
                    code: e.reply_code(),
                    text: e.reply_text(),
                    class_id: 0,
                    method_id: 0,
                })?;
                self.handle_method_frame(conn, ch_id, method)
            }
            FRAME_HEADER | FRAME_BODY if self.sessions.channel_is_closing(conn, ch_id) => {
                // Waiting for close-ok: content is discarded like methods.
                Ok(())
            }
            FRAME_HEADER => self.handle_header_frame(conn, ch_id, frame.payload),
            FRAME_BODY => self.handle_body_frame(conn, ch_id, frame.payload),
            FRAME_HEARTBEAT => Err(AmqpError::unexpected_frame("type 8, all octets = <<>>")),
            other => Err(AmqpError::frame_error(format!(
                "unknown frame type {other}"
            ))),
        }
    }

    fn handle_method_frame(
        &mut self,
        conn: ConnId,
        ch_id: u16,
        method: Method,
    ) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        let c = self
            .sessions
            .conns
            .get_mut(&conn)
            .ok_or_else(no_connection)?;
        let channel_max = c.info.channel_max;
        let Some(ch) = c.channels.get_mut(&ch_id) else {
            // RabbitMQ limits how many are open at once, not numbers, and
            // checks it for any method on a channel it does not know.
            let open = c.channels.len();
            if channel_max != 0 && open >= usize::from(channel_max) {
                return Err(AmqpError::not_allowed(format!(
                    "number of channels opened ({open}) has reached the \
                     negotiated channel_max ({channel_max})"
                )));
            }
            if let Method::ChannelOpen(_) = method {
                if self.access.user_limits(&c.info.user).max_channels >= 0 {
                    let user = c.info.user.clone();
                    self.check_channel_limit(&user)
                        .map_err(|e| e.during(class_id, method_id))?;
                }
                let c = self
                    .sessions
                    .conns
                    .get_mut(&conn)
                    .ok_or_else(no_connection)?;
                c.channels.insert(ch_id, Box::new(Channel::new()));
                self.global.channels_opened += 1;
                encode_method_frame(
                    &mut c.out,
                    ch_id,
                    &Method::ChannelOpenOk(Default::default()),
                );
                return Ok(());
            }
            return Err(
                AmqpError::channel_error("expected 'channel.open'").during(class_id, method_id)
            );
        };
        if ch.closing {
            // Waiting for close-ok: RabbitMQ drops everything else. A
            // client close that crossed ours is answered, and the channel
            // stays closing: the client's close-ok for ours follows.
            match method {
                Method::ChannelCloseOk(_) => {
                    c.channels.remove(&ch_id);
                }
                Method::ChannelClose(_) => {
                    encode_method_frame(
                        &mut c.out,
                        ch_id,
                        &Method::ChannelCloseOk(Default::default()),
                    );
                }
                _ => {}
            }
            return Ok(());
        }
        match ch.assembly {
            Assembly::Idle => {}
            Assembly::Header(_) => {
                return Err(AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                )
                .during(60, 40))
            }
            Assembly::Body { .. } => {
                return Err(AmqpError::unexpected_frame(
                    "expected content body, got non content body frame instead",
                )
                .during(60, 40))
            }
        }
        if let Method::BasicPublish(p) = method {
            ch.assembly = Assembly::Header(p);
            return Ok(());
        }
        self.handle_method(conn, ch_id, method)
            .map_err(|e| e.during(class_id, method_id))
    }

    fn handle_header_frame(
        &mut self,
        conn: ConnId,
        ch_id: u16,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        let max = self.config.message_size_max_bytes;
        let ch = self.sessions.channel_mut(conn, ch_id)?;
        let publish = match std::mem::replace(&mut ch.assembly, Assembly::Idle) {
            Assembly::Header(p) => p,
            other => {
                ch.assembly = other;
                return Err(AmqpError::unexpected_frame(
                    "expected method frame, got non method frame instead",
                ));
            }
        };
        let header = ContentHeader::decode(payload).map_err(|e| AmqpError {
            code: e.reply_code(),
            text: e.reply_text(),
            class_id: 60,
            method_id: 40,
        })?;
        if header.class_id != 60 {
            return Err(AmqpError::frame_error(format!(
                "content header for class {} does not match method class 60",
                header.class_id
            )));
        }
        if header.body_size > max {
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                header.body_size, max
            ))
            .during(60, 40));
        }
        if header.body_size == 0 {
            return self.publish(conn, ch_id, &publish_ref(&publish, &header, &[]));
        }
        ch.assembly = Assembly::Body {
            publish,
            header,
            parts: Vec::new(),
            received: 0,
        };
        Ok(())
    }

    fn handle_body_frame(
        &mut self,
        conn: ConnId,
        ch_id: u16,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        let ch = self.sessions.channel_mut(conn, ch_id)?;
        let (header, parts, received) =
            match &mut ch.assembly {
                Assembly::Body {
                    header,
                    parts,
                    received,
                    ..
                } => (header, parts, received),
                Assembly::Header(_) => return Err(AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                )
                .during(60, 40)),
                Assembly::Idle => {
                    return Err(AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    ))
                }
            };
        *received += payload.len() as u64;
        if *received > header.body_size {
            return Err(AmqpError::frame_error(format!(
                "received body of {} bytes, more than the declared {}",
                received, header.body_size
            )));
        }
        parts.push(payload);
        if *received < header.body_size {
            return Ok(());
        }
        let Assembly::Body {
            publish,
            header,
            mut parts,
            ..
        } = std::mem::replace(&mut ch.assembly, Assembly::Idle)
        else {
            return Ok(());
        };
        let body = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let mut b = BytesMut::with_capacity(header.body_size as usize);
            for p in &parts {
                b.extend_from_slice(p);
            }
            b.freeze()
        };
        self.publish(conn, ch_id, &publish_ref(&publish, &header, &body))
    }
}

/// Reply texts are short strings: at most 255 bytes, cut at a char boundary.
fn publish_ref<'a>(
    p: &'a amqp_codec::BasicPublish,
    h: &'a ContentHeader,
    body: &'a [u8],
) -> crate::ops::publish::PublishRef<'a> {
    crate::ops::publish::PublishRef::new(
        &p.exchange,
        &p.routing_key,
        p.mandatory,
        p.immediate,
        &h.raw_properties,
        body,
    )
}

/// A content header or body frame, or a basic.publish method frame: the
/// frames of a publish, which may leave dispatch pending.
/// True when `buf` starts with a basic.publish method frame (its first 11
/// bytes: frame type, channel, size, class and method ids).
pub(crate) fn starts_with_publish_method(buf: &[u8]) -> bool {
    buf.first() == Some(&FRAME_METHOD) && buf.get(7..11) == Some(&[0, 60, 0, 40])
}

pub(crate) fn is_publish_part(f: &Frame) -> bool {
    match f.kind {
        FRAME_HEADER | FRAME_BODY => true,
        FRAME_METHOD => f.payload.get(..4) == Some(&[0, 60, 0, 40]),
        _ => false,
    }
}
