//! Content headers and basic-class properties.
//!
//! Property flags are 16-bit words, bit 15 = first property, bit 0 = "another flag
//! word follows". Class basic has 14 properties, so RabbitMQ reads exactly one word
//! and ignores bits 1 and 0 (its generated `decode_properties/2` matches
//! `<<P0:1, ..., P13:1, _:2, ...>>`); we do the same. Bytes after the last present
//! property are ignored as well.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::constants::{CLASS_BASIC, FRAME_HEADER};
use crate::error::DecodeError;
use crate::field::{skip_table, FieldTable};
use crate::shortstr::ShortStr;
use crate::wire::{self, Cursor};

/// A decoded content header frame payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub weight: u16,
    pub body_size: u64,
    /// Flags + property list exactly as received, so the broker can forward them
    /// without re-encoding.
    pub raw_properties: Bytes,
}

impl ContentHeader {
    /// Decodes and validates (walks all properties without allocating; invalid
    /// tables/UTF-8 -> [`DecodeError::InvalidProperties`]).
    ///
    /// Properties are only validated for class basic: for any other class RabbitMQ's
    /// command assembler rejects the header with `505 UNEXPECTED_FRAME` (class
    /// mismatch with the preceding method) before looking at the properties, and the
    /// caller needs the class id to reproduce that.
    pub fn decode(payload: Bytes) -> Result<ContentHeader, DecodeError> {
        if payload.len() < 12 {
            return Err(DecodeError::UnknownFrameLayout {
                frame_type: FRAME_HEADER,
                payload,
            });
        }
        let mut buf = payload;
        let class_id = buf.get_u16();
        let weight = buf.get_u16();
        let body_size = buf.get_u64();
        if class_id == CLASS_BASIC {
            walk(&buf, NUM_PROPS, true).map_err(|e| DecodeError::InvalidProperties(Box::new(e)))?;
        }
        Ok(ContentHeader {
            class_id,
            weight,
            body_size,
            raw_properties: buf,
        })
    }

    /// Writes class id, weight, body size and the raw properties (no frame header).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.class_id);
        buf.put_u16(self.weight);
        buf.put_u64(self.body_size);
        buf.put_slice(&self.raw_properties);
    }
}

/// Properties of class basic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    /// The deprecated `cluster-id` (called `reserved` in the 0-9-1 XML).
    pub cluster_id: Option<ShortStr>,
}

#[derive(Clone, Copy)]
enum Kind {
    Short,
    Table,
    Octet,
    Long64,
}

const NUM_PROPS: usize = 14;
const KINDS: [Kind; NUM_PROPS] = [
    Kind::Short,  // content-type
    Kind::Short,  // content-encoding
    Kind::Table,  // headers
    Kind::Octet,  // delivery-mode
    Kind::Octet,  // priority
    Kind::Short,  // correlation-id
    Kind::Short,  // reply-to
    Kind::Short,  // expiration
    Kind::Short,  // message-id
    Kind::Long64, // timestamp
    Kind::Short,  // type
    Kind::Short,  // user-id
    Kind::Short,  // app-id
    Kind::Short,  // cluster-id
];
const DELIVERY_MODE: usize = 3;
const PRIORITY: usize = 4;
const EXPIRATION: usize = 7;

#[inline]
fn flag(i: usize) -> u16 {
    1 << (15 - i)
}

/// Skips the present properties with index < `stop`; returns the flag word and a
/// cursor at property `stop`. `deep` validates tables and UTF-8 (content-header
/// validation); otherwise tables are skipped by length only (hot-path peeking).
fn walk(raw: &[u8], stop: usize, deep: bool) -> Result<(u16, Cursor<'_>), DecodeError> {
    let mut cur = Cursor(raw);
    let flags = cur.u16()?;
    for (i, kind) in KINDS.iter().enumerate().take(stop) {
        if flags & flag(i) == 0 {
            continue;
        }
        match kind {
            Kind::Short if deep => {
                cur.shortstr()?;
            }
            Kind::Short => {
                let n = cur.u8()? as usize;
                cur.take(n)?;
            }
            Kind::Table if deep => skip_table(&mut cur, 1)?,
            Kind::Table => {
                let n = cur.u32()? as usize;
                cur.take(n)?;
            }
            Kind::Octet => {
                cur.take(1)?;
            }
            Kind::Long64 => {
                cur.take(8)?;
            }
        }
    }
    Ok((flags, cur))
}

/// Flag bits of the first property-flags word.
pub const FLAG_REPLY_TO: u16 = 1 << (15 - 6);
pub const FLAG_USER_ID: u16 = 1 << (15 - 11);

/// The first property-flags word of raw property bytes.
pub fn property_flags(raw: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*raw.first()?, *raw.get(1)?]))
}

/// What the publish path reads from a property list, taken in the one deep
/// walk that also validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropsPeek<'a> {
    pub delivery_mode: Option<u8>,
    pub expiration: Option<&'a str>,
}

/// Validates `raw` exactly as `ContentHeader::decode` does for class basic
/// and returns its delivery mode and expiration; `None` if invalid.
pub fn peek_basic_properties(raw: &[u8]) -> Option<PropsPeek<'_>> {
    let mut cur = Cursor(raw);
    let flags = cur.u16().ok()?;
    let mut peek = PropsPeek {
        delivery_mode: None,
        expiration: None,
    };
    for (i, kind) in KINDS.iter().enumerate() {
        if flags & flag(i) == 0 {
            continue;
        }
        match kind {
            Kind::Short => {
                let s = cur.shortstr().ok()?;
                if i == EXPIRATION {
                    peek.expiration = Some(s);
                }
            }
            Kind::Table => skip_table(&mut cur, 1).ok()?,
            Kind::Octet => {
                let b = cur.u8().ok()?;
                if i == DELIVERY_MODE {
                    peek.delivery_mode = Some(b);
                }
            }
            Kind::Long64 => {
                cur.take(8).ok()?;
            }
        }
    }
    Some(peek)
}

/// Delivery mode from raw property bytes without allocating (None if absent or the
/// bytes are malformed).
pub fn peek_delivery_mode(raw: &[u8]) -> Option<u8> {
    let (flags, mut cur) = walk(raw, DELIVERY_MODE, false).ok()?;
    if flags & flag(DELIVERY_MODE) == 0 {
        return None;
    }
    cur.u8().ok()
}

/// Priority from raw property bytes without allocating (None if absent or the
/// bytes are malformed).
pub fn peek_priority(raw: &[u8]) -> Option<u8> {
    // Most messages have none: the flags say so without a walk.
    if property_flags(raw)? & flag(PRIORITY) == 0 {
        return None;
    }
    let (flags, mut cur) = walk(raw, PRIORITY, false).ok()?;
    if flags & flag(PRIORITY) == 0 {
        return None;
    }
    cur.u8().ok()
}

/// Expiration from raw property bytes without allocating (None if absent, malformed
/// or not UTF-8).
pub fn peek_expiration(raw: &[u8]) -> Option<&str> {
    if property_flags(raw)? & flag(EXPIRATION) == 0 {
        return None;
    }
    let (flags, mut cur) = walk(raw, EXPIRATION, false).ok()?;
    if flags & flag(EXPIRATION) == 0 {
        return None;
    }
    cur.shortstr().ok()
}

impl BasicProperties {
    /// Decodes flags + property list; strings and tables are zero-copy slices of `raw`.
    pub fn decode(raw: &Bytes) -> Result<BasicProperties, DecodeError> {
        let mut buf = raw.clone();
        let flags = wire::get_u16(&mut buf)?;
        let on = |i: usize| flags & flag(i) != 0;
        let short = |i: usize, buf: &mut Bytes| -> Result<Option<ShortStr>, DecodeError> {
            if on(i) {
                wire::get_shortstr(buf).map(Some)
            } else {
                Ok(None)
            }
        };
        let content_type = short(0, &mut buf)?;
        let content_encoding = short(1, &mut buf)?;
        let headers = if on(2) {
            Some(FieldTable::decode(&mut buf)?)
        } else {
            None
        };
        let delivery_mode = if on(3) {
            Some(wire::get_u8(&mut buf)?)
        } else {
            None
        };
        let priority = if on(4) {
            Some(wire::get_u8(&mut buf)?)
        } else {
            None
        };
        let correlation_id = short(5, &mut buf)?;
        let reply_to = short(6, &mut buf)?;
        let expiration = short(7, &mut buf)?;
        let message_id = short(8, &mut buf)?;
        let timestamp = if on(9) {
            Some(wire::get_u64(&mut buf)?)
        } else {
            None
        };
        Ok(BasicProperties {
            content_type,
            content_encoding,
            headers,
            delivery_mode,
            priority,
            correlation_id,
            reply_to,
            expiration,
            message_id,
            timestamp,
            kind: short(10, &mut buf)?,
            user_id: short(11, &mut buf)?,
            app_id: short(12, &mut buf)?,
            cluster_id: short(13, &mut buf)?,
        })
    }

    fn flags(&self) -> u16 {
        let present = [
            self.content_type.is_some(),
            self.content_encoding.is_some(),
            self.headers.is_some(),
            self.delivery_mode.is_some(),
            self.priority.is_some(),
            self.correlation_id.is_some(),
            self.reply_to.is_some(),
            self.expiration.is_some(),
            self.message_id.is_some(),
            self.timestamp.is_some(),
            self.kind.is_some(),
            self.user_id.is_some(),
            self.app_id.is_some(),
            self.cluster_id.is_some(),
        ];
        present
            .iter()
            .enumerate()
            .filter(|(_, p)| **p)
            .fold(0, |acc, (i, _)| acc | flag(i))
    }

    /// Writes flags + property list (the form stored in
    /// [`ContentHeader::raw_properties`]).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.flags());
        let short = |buf: &mut BytesMut, s: &Option<ShortStr>| {
            if let Some(s) = s {
                wire::put_shortstr(buf, s);
            }
        };
        short(buf, &self.content_type);
        short(buf, &self.content_encoding);
        if let Some(h) = &self.headers {
            h.encode(buf);
        }
        if let Some(v) = self.delivery_mode {
            buf.put_u8(v);
        }
        if let Some(v) = self.priority {
            buf.put_u8(v);
        }
        short(buf, &self.correlation_id);
        short(buf, &self.reply_to);
        short(buf, &self.expiration);
        short(buf, &self.message_id);
        if let Some(v) = self.timestamp {
            buf.put_u64(v);
        }
        short(buf, &self.kind);
        short(buf, &self.user_id);
        short(buf, &self.app_id);
        short(buf, &self.cluster_id);
    }

    /// Encoded flags + property list as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}
