//! Frame layer: splitting a byte stream into frames and writing frames.
//!
//! RabbitMQ's reader (`rabbit_reader:handle_input/3`) checks, in this order:
//! 1. the payload size from the 7-byte header against `frame_max` (before reading the
//!    payload), allowing a fudge of 8 bytes because "quite a few clients get it
//!    wrong": a payload is too large only if `size > frame_max - 8 + 8`;
//! 2. the frame-end octet once the whole frame is buffered;
//! 3. the frame type (unknown types, and heartbeats with a payload, are
//!    `unknown_frame`).
//!
//! All three are `501 FRAME_ERROR` connection errors; the first two are "fatal"
//! (RabbitMQ stops reading, sends `connection.close` and closes the socket after a
//! grace period), the third is an ordinary hard error.

use bytes::{BufMut, BytesMut};

use crate::constants::*;
use crate::error::frame_snippet;
use crate::method::Method;

/// One frame; `payload` is a zero-copy slice of the receive buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: bytes::Bytes,
}

/// A framing violation. `parse_frame` leaves the buffer untouched when returning
/// one, so [`FrameError::reply_text_for`] can quote the frame like RabbitMQ does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Payload `size` exceeds the negotiated limit; `max` is `frame_max - 8` (the
    /// payload limit RabbitMQ reports, although it tolerates up to `frame_max`).
    #[error("frame payload of {size} bytes exceeds the negotiated maximum {max}")]
    TooLarge { size: u32, max: u32 },
    /// The octet after the payload is not 0xCE.
    #[error("invalid frame end marker {0:#04x}")]
    BadFrameEnd(u8),
    /// Unknown frame type, or a heartbeat frame with a non-empty payload (RabbitMQ
    /// treats both as `unknown_frame`).
    #[error("unknown frame type {0}")]
    UnknownType(u8),
}

impl FrameError {
    /// RabbitMQ answers all three with `501 FRAME_ERROR`.
    pub fn reply_code(&self) -> u16 {
        reply::FRAME_ERROR
    }

    /// Reply text without access to the offending bytes (payload quoted as `<<>>`,
    /// frame type as 0 where unknown). Prefer [`FrameError::reply_text_for`].
    pub fn reply_text(&self) -> String {
        self.reply_text_for(&[])
    }

    /// RabbitMQ's exact reply text, given the buffer `parse_frame` rejected, e.g.
    /// `"FRAME_ERROR - type 1, first 16 octets = <<0,60,...>>: {invalid_frame_end_marker,54}"`
    /// or `"FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}"`.
    pub fn reply_text_for(&self, buf: &[u8]) -> String {
        let kind = buf.first().copied().unwrap_or(match self {
            FrameError::UnknownType(t) => *t,
            _ => 0,
        });
        let size = buf
            .get(3..7)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .unwrap_or(0);
        let payload = buf.get(7..).unwrap_or(&[]);
        let payload = &payload[..payload.len().min(size)];
        let expl = match self {
            FrameError::TooLarge { size, max } => format!(
                "{}: {{frame_too_large,{size},{max}}}",
                frame_snippet(kind, &[])
            ),
            FrameError::BadFrameEnd(e) => format!(
                "{}: {{invalid_frame_end_marker,{e}}}",
                frame_snippet(kind, payload)
            ),
            FrameError::UnknownType(_) => {
                format!("{}: unknown_frame", frame_snippet(kind, payload))
            }
        };
        reply::text(reply::FRAME_ERROR, &expl)
    }
}

/// Parse one frame from the front of `buf`. `Ok(None)` means more bytes are needed
/// (a normal state).
///
/// `frame_max` is the negotiated maximum total frame size including the 8 bytes of
/// overhead (0 = no limit other than u32). Like RabbitMQ, 8 bytes of slack are
/// tolerated: the frame is rejected only if its *payload* exceeds `frame_max`. The
/// size is checked from the 7-byte header before waiting for (or allocating) the
/// payload. On success the frame's bytes are removed from `buf` and `payload` is split
/// off zero-copy; on error `buf` is left untouched.
pub fn parse_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    let Some(header) = buf.get(..7) else {
        return Ok(None);
    };
    let kind = header[0];
    let channel = u16::from_be_bytes([header[1], header[2]]);
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    if frame_max != 0 && size > frame_max {
        return Err(FrameError::TooLarge {
            size,
            max: frame_max.saturating_sub(FRAME_OVERHEAD_BYTES),
        });
    }
    // Saturating: on 32-bit targets a hostile size must not wrap around.
    let total = (size as usize).saturating_add(8);
    let Some(&end) = buf.get(total - 1) else {
        return Ok(None);
    };
    if end != FRAME_END {
        return Err(FrameError::BadFrameEnd(end));
    }
    match kind {
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY => {}
        FRAME_HEARTBEAT if size == 0 => {}
        _ => return Err(FrameError::UnknownType(kind)),
    }
    let frame = buf.split_to(total).freeze();
    Ok(Some(Frame {
        kind,
        channel,
        payload: frame.slice(7..total - 1),
    }))
}

/// Writes a complete frame around `payload`.
#[inline]
pub fn encode_frame(buf: &mut BytesMut, kind: u8, channel: u16, payload: &[u8]) {
    buf.reserve(payload.len() + FRAME_OVERHEAD_BYTES as usize);
    buf.put_u8(kind);
    buf.put_u16(channel);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
    buf.put_u8(FRAME_END);
}

/// Writes a heartbeat frame (always channel 0, empty payload).
pub fn encode_heartbeat(buf: &mut BytesMut) {
    encode_frame(buf, FRAME_HEARTBEAT, 0, &[]);
}

/// Writes a complete method frame (header, class/method ids + args, frame-end),
/// patching the size in place (no temp buffer).
pub fn encode_method_frame(buf: &mut BytesMut, channel: u16, method: &Method) {
    let start = buf.len();
    buf.put_u8(FRAME_METHOD);
    buf.put_u16(channel);
    buf.put_u32(0);
    method.encode(buf);
    let size = (buf.len() - start - 7) as u32;
    buf[start + 3..start + 7].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

/// Writes a content header frame from already-encoded property bytes (flags +
/// property list, as received).
#[inline]
pub fn encode_content_header_frame(
    buf: &mut BytesMut,
    channel: u16,
    class_id: u16,
    body_size: u64,
    raw_properties: &[u8],
) {
    buf.reserve(12 + raw_properties.len() + FRAME_OVERHEAD_BYTES as usize);
    buf.put_u8(FRAME_HEADER);
    buf.put_u16(channel);
    buf.put_u32((12 + raw_properties.len()) as u32);
    buf.put_u16(class_id);
    buf.put_u16(0); // weight: always 0 in 0-9-1
    buf.put_u64(body_size);
    buf.put_slice(raw_properties);
    buf.put_u8(FRAME_END);
}

/// Writes the body as body frames of at most `frame_max` bytes each (`frame_max`
/// includes the 8 bytes of overhead; 0 = one frame). An empty body produces no
/// frames, as in RabbitMQ (`rabbit_binary_generator:build_simple_content_frames`).
#[inline]
pub fn encode_body_frames(buf: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    if body.is_empty() {
        return;
    }
    let chunk = if frame_max == 0 {
        body.len()
    } else {
        // A frame_max below the overhead is nonsensical (negotiation forbids < 4096);
        // still make progress rather than loop forever.
        (frame_max.saturating_sub(FRAME_OVERHEAD_BYTES) as usize).max(1)
    };
    let frames = body.len().div_ceil(chunk);
    buf.reserve(body.len() + frames * FRAME_OVERHEAD_BYTES as usize);
    for part in body.chunks(chunk) {
        encode_frame(buf, FRAME_BODY, channel, part);
    }
}
