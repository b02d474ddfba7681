//! The publish fast path: a basic.publish whose method, content header and
//! single body frame are all complete in the read buffer is read straight
//! from it, borrowed, with no `Frame`, `Method` or `ContentHeader` built.
//!
//! It only ever accepts what the general path (`parse_frame` +
//! `Method::decode` + `ContentHeader::decode`) accepts and reads the same
//! values; anything else (an error, a multi-frame body, a frame not yet
//! complete) returns `None` and the caller takes the general path, which
//! produces the exact error RabbitMQ would. Tests below check that the two
//! paths agree on random inputs.

use crate::constants::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD};
use crate::properties::peek_basic_properties;
use crate::wire::utf8;

/// A complete publish borrowed from the buffer it lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WirePublish<'a> {
    pub channel: u16,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub mandatory: bool,
    pub immediate: bool,
    /// Content-header property bytes (flags + list).
    pub properties: &'a [u8],
    /// Read from `properties` while validating them.
    pub delivery_mode: Option<u8>,
    pub expiration: Option<&'a str>,
    pub body: &'a [u8],
    /// Bytes of `buf` the three frames take.
    pub len: usize,
}

/// One complete frame at the start of `buf`: (type, channel, payload, total
/// length). `None` unless it is complete and well-formed within `frame_max`.
fn frame(buf: &[u8], frame_max: u32) -> Option<(u8, u16, &[u8], usize)> {
    let h = buf.get(..7)?;
    let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
    if frame_max != 0 && size > frame_max {
        return None;
    }
    let total = (size as usize).checked_add(8)?;
    if *buf.get(total - 1)? != FRAME_END {
        return None;
    }
    Some((
        h[0],
        u16::from_be_bytes([h[1], h[2]]),
        &buf[7..total - 1],
        total,
    ))
}

fn shortstr(b: &[u8], at: usize) -> Option<(&str, usize)> {
    let n = *b.get(at)? as usize;
    let s = b.get(at + 1..at + 1 + n)?;
    Some((utf8(s)?, at + 1 + n))
}

/// See the module docs.
pub fn peek_publish(buf: &[u8], frame_max: u32) -> Option<WirePublish<'_>> {
    let (kind, channel, m, m_len) = frame(buf, frame_max)?;
    if kind != FRAME_METHOD || channel == 0 || m.get(..4)? != [0, 60, 0, 40] {
        return None;
    }
    // reserved-1 (u16), exchange, routing-key, bits; nothing after.
    let (exchange, at) = shortstr(m, 6)?;
    let (routing_key, at) = shortstr(m, at)?;
    let bits = *m.get(at)?;
    if at + 1 != m.len() {
        return None;
    }
    let rest = &buf[m_len..];
    let (kind, ch, h, h_len) = frame(rest, frame_max)?;
    if kind != FRAME_HEADER || ch != channel || h.len() < 14 || h[..2] != [0, 60] {
        return None;
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&h[4..12]);
    let body_size = u64::from_be_bytes(size);
    let properties = &h[12..];
    let peek = peek_basic_properties(properties)?;
    let (body, b_len) = if body_size == 0 {
        (&[][..], 0)
    } else {
        let (kind, ch, b, b_len) = frame(&rest[h_len..], frame_max)?;
        if kind != FRAME_BODY || ch != channel || b.len() as u64 != body_size {
            return None;
        }
        (b, b_len)
    };
    Some(WirePublish {
        channel,
        exchange,
        routing_key,
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
        properties,
        delivery_mode: peek.delivery_mode,
        expiration: peek.expiration,
        body,
        len: m_len + h_len + b_len,
    })
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::frame::{encode_body_frames, encode_content_header_frame, encode_method_frame};
    use crate::method::{BasicPublish, Method};
    use crate::properties::ContentHeader;
    use crate::{parse_frame, ShortStr};

    fn publish(ch: u16, ex: &str, rk: &str, props: &[u8], body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        let m = Method::BasicPublish(BasicPublish {
            reserved_1: 0,
            exchange: ShortStr::from(ex),
            routing_key: ShortStr::from(rk),
            mandatory: true,
            immediate: false,
        });
        encode_method_frame(&mut b, ch, &m);
        encode_content_header_frame(&mut b, ch, 60, body.len() as u64, props);
        encode_body_frames(&mut b, ch, body, 131072);
        b
    }

    /// What the general path makes of `buf`, for the cases the fast path
    /// may take: Some when it reads exactly one complete publish.
    fn slow(buf: &[u8], frame_max: u32) -> Option<(u16, String, String, bool, Bytes, Bytes)> {
        let mut b = BytesMut::from(buf);
        let f = parse_frame(&mut b, frame_max).ok()??;
        let Ok(Method::BasicPublish(p)) = Method::decode(f.payload) else {
            return None;
        };
        let h = parse_frame(&mut b, frame_max).ok()??;
        let header = ContentHeader::decode(h.payload).ok()?;
        let body = if header.body_size == 0 {
            Bytes::new()
        } else {
            parse_frame(&mut b, frame_max).ok()??.payload
        };
        Some((
            f.channel,
            p.exchange.to_string(),
            p.routing_key.to_string(),
            p.mandatory,
            header.raw_properties,
            body,
        ))
    }

    #[test]
    fn reads_a_complete_publish_and_waits_for_a_partial_one() {
        let props = [0x10, 0x00, 2]; // delivery-mode = 2
        let b = publish(3, "amq.direct", "key", &props, b"hello");
        let p = peek_publish(&b, 131072).expect("complete");
        assert_eq!(
            (
                p.channel,
                p.exchange,
                p.routing_key,
                p.mandatory,
                p.immediate
            ),
            (3, "amq.direct", "key", true, false)
        );
        assert_eq!(
            (p.properties, p.body, p.len),
            (&props[..], &b"hello"[..], b.len())
        );
        for n in 0..b.len() {
            assert_eq!(peek_publish(&b[..n], 131072), None, "prefix {n}");
        }
        let empty = publish(1, "", "q", &[0, 0], b"");
        assert_eq!(peek_publish(&empty, 131072).map(|p| p.body.len()), Some(0));
    }

    #[test]
    fn agrees_with_the_general_path_on_mutated_input() {
        let base = publish(
            1,
            "ex",
            "rk",
            &[0x90, 0x00, 4, b't', b'e', b'x', b't', 1],
            b"body",
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut agreed = 0;
        for _ in 0..50_000 {
            let mut b = base.to_vec();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            if let Some(p) = peek_publish(&b, 4096) {
                let s = slow(&b, 4096).expect("fast path accepted what the general path refuses");
                assert_eq!(
                    (p.channel, p.exchange, p.routing_key, p.mandatory),
                    (s.0, s.1.as_str(), s.2.as_str(), s.3)
                );
                assert_eq!((p.properties, p.body), (&s.4[..], &s.5[..]));
                assert_eq!(p.delivery_mode, crate::peek_delivery_mode(p.properties));
                assert_eq!(p.expiration, crate::peek_expiration(p.properties));
                agreed += 1;
            }
        }
        assert!(
            agreed > 100,
            "mutations left too few valid publishes: {agreed}"
        );
    }
}
