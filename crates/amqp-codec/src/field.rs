//! Field tables and field values.
//!
//! The accepted type tags are exactly those of RabbitMQ's
//! `rabbit_binary_parser:parse_table/1`: the 0-9-1 standard set plus the
//! Qpid/RabbitMQ extensions. Notably:
//! * `'L'` is accepted and, like RabbitMQ, decoded as a *signed* 64-bit integer
//!   ([`FieldValue::I64`], re-encoded as `'l'`), see rabbitmq-server#1093;
//! * `'t'` is true for any non-zero octet (re-encoded as 1);
//! * `'U'` (unsigned 64-bit in the 0-9-1 spec's own table) is *not* accepted by
//!   RabbitMQ and therefore rejected here ([`DecodeError::UnknownFieldType`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::shortstr::ShortStr;
use crate::wire::{self, Cursor};

/// Deepest accepted nesting of tables/arrays (the top-level table counts as 1).
/// RabbitMQ has no limit; we need one so hostile input cannot overflow the stack.
pub const FIELD_NESTING_DEPTH_MAX: usize = 64;

/// A field-table or array value; the comment on each variant is its wire tag.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// `'t'`
    Bool(bool),
    /// `'b'`
    I8(i8),
    /// `'B'`
    U8(u8),
    /// `'s'`
    I16(i16),
    /// `'u'`
    U16(u16),
    /// `'I'`
    I32(i32),
    /// `'i'`
    U32(u32),
    /// `'l'` (also decoded from `'L'`, like RabbitMQ)
    I64(i64),
    /// `'f'`
    F32(f32),
    /// `'d'`
    F64(f64),
    /// `'D'`: `value / 10^scale`
    Decimal { scale: u8, value: u32 },
    /// `'S'` (arbitrary bytes; usually UTF-8)
    LongStr(Bytes),
    /// `'A'`
    Array(Vec<FieldValue>),
    /// `'T'` (seconds since the epoch)
    Timestamp(u64),
    /// `'F'`
    Table(FieldTable),
    /// `'V'`
    Void,
    /// `'x'`
    ByteArray(Bytes),
}

impl FieldValue {
    /// The string if this is a `LongStr` holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Any integer type widened to i64 (not bool, not timestamp, not floats) — the
    /// way RabbitMQ treats `x-max-length` & co., which accept every integer tag.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v.into(),
            FieldValue::U8(v) => v.into(),
            FieldValue::I16(v) => v.into(),
            FieldValue::U16(v) => v.into(),
            FieldValue::I32(v) => v.into(),
            FieldValue::U32(v) => v.into(),
            FieldValue::I64(v) => v,
            _ => return None,
        })
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            FieldValue::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The wire type tag.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::ByteArray(_) => b'x',
        }
    }

    /// Encoded size including the tag byte.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            FieldValue::Bool(_) | FieldValue::I8(_) | FieldValue::U8(_) => 1,
            FieldValue::I16(_) | FieldValue::U16(_) => 2,
            FieldValue::I32(_) | FieldValue::U32(_) | FieldValue::F32(_) => 4,
            FieldValue::I64(_) | FieldValue::F64(_) | FieldValue::Timestamp(_) => 8,
            FieldValue::Decimal { .. } => 5,
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => 4 + b.len(),
            FieldValue::Array(a) => 4 + a.iter().map(FieldValue::encoded_len).sum::<usize>(),
            FieldValue::Table(t) => t.encoded_len(),
            FieldValue::Void => 0,
        }
    }

    /// Writes tag + value.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.tag());
        match self {
            FieldValue::Bool(b) => buf.put_u8(u8::from(*b)),
            FieldValue::I8(v) => buf.put_i8(*v),
            FieldValue::U8(v) => buf.put_u8(*v),
            FieldValue::I16(v) => buf.put_i16(*v),
            FieldValue::U16(v) => buf.put_u16(*v),
            FieldValue::I32(v) => buf.put_i32(*v),
            FieldValue::U32(v) => buf.put_u32(*v),
            FieldValue::I64(v) => buf.put_i64(*v),
            FieldValue::F32(v) => buf.put_f32(*v),
            FieldValue::F64(v) => buf.put_f64(*v),
            FieldValue::Decimal { scale, value } => {
                buf.put_u8(*scale);
                buf.put_u32(*value);
            }
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => wire::put_longstr(buf, b),
            FieldValue::Array(a) => {
                let len: usize = a.iter().map(FieldValue::encoded_len).sum();
                buf.put_u32(len as u32);
                for v in a {
                    v.encode(buf);
                }
            }
            FieldValue::Table(t) => t.encode(buf),
            FieldValue::Timestamp(v) => buf.put_u64(*v),
            FieldValue::Void => {}
        }
    }

    /// Decodes tag + value; `depth` is the nesting level of the enclosing container.
    fn decode(buf: &mut Bytes, depth: usize) -> Result<FieldValue, DecodeError> {
        let tag = wire::get_u8(buf)?;
        Ok(match tag {
            b't' => FieldValue::Bool(wire::get_u8(buf)? != 0),
            b'b' => FieldValue::I8(wire::get_u8(buf)? as i8),
            b'B' => FieldValue::U8(wire::get_u8(buf)?),
            b's' => FieldValue::I16(wire::get_u16(buf)? as i16),
            b'u' => FieldValue::U16(wire::get_u16(buf)?),
            b'I' => FieldValue::I32(wire::get_u32(buf)? as i32),
            b'i' => FieldValue::U32(wire::get_u32(buf)?),
            b'l' | b'L' => FieldValue::I64(wire::get_u64(buf)? as i64),
            b'f' => FieldValue::F32(f32::from_bits(wire::get_u32(buf)?)),
            b'd' => FieldValue::F64(f64::from_bits(wire::get_u64(buf)?)),
            b'D' => FieldValue::Decimal {
                scale: wire::get_u8(buf)?,
                value: wire::get_u32(buf)?,
            },
            b'S' => FieldValue::LongStr(wire::get_longstr(buf)?),
            b'x' => FieldValue::ByteArray(wire::get_longstr(buf)?),
            b'T' => FieldValue::Timestamp(wire::get_u64(buf)?),
            b'V' => FieldValue::Void,
            b'F' => FieldValue::Table(FieldTable::decode_nested(buf, depth + 1)?),
            b'A' => {
                if depth + 1 > FIELD_NESTING_DEPTH_MAX {
                    return Err(DecodeError::NestingTooDeep);
                }
                let mut body = wire::get_longstr(buf)?;
                let mut items = Vec::new();
                while body.has_remaining() {
                    items.push(FieldValue::decode(&mut body, depth + 1)?);
                }
                FieldValue::Array(items)
            }
            other => return Err(DecodeError::UnknownFieldType(other)),
        })
    }
}

/// Order-preserving table so re-encoding is byte-exact (except for the two value
/// normalisations RabbitMQ also applies: `'L'` -> `'l'`, non-zero bool -> 1).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// First entry with this key (RabbitMQ's `table_lookup` also takes the first).
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Replaces the value in place if the key is present, else appends.
    pub fn insert(&mut self, key: ShortStr, v: FieldValue) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }

    /// Removes the first entry with this key.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortStr, FieldValue)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Order-independent equality (RabbitMQ compares arguments as sets, via
    /// `rabbit_misc:sort_field_table/1` on the top level): same keys, equal values.
    /// Nested tables are compared in order, as RabbitMQ does.
    pub fn equivalent(&self, other: &FieldTable) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        let mut a: Vec<_> = self.0.iter().collect();
        let mut b: Vec<_> = other.0.iter().collect();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && x.1 == y.1)
    }

    /// Reads the u32 length prefix and the entries, advancing `buf` past the table.
    /// Keys and strings are zero-copy slices of `buf`.
    pub fn decode(buf: &mut Bytes) -> Result<FieldTable, DecodeError> {
        Self::decode_nested(buf, 1)
    }

    fn decode_nested(buf: &mut Bytes, depth: usize) -> Result<FieldTable, DecodeError> {
        if depth > FIELD_NESTING_DEPTH_MAX {
            return Err(DecodeError::NestingTooDeep);
        }
        let mut body = wire::get_longstr(buf)?;
        let mut entries = Vec::new();
        while body.has_remaining() {
            let key = wire::get_shortstr(&mut body)?;
            let value = FieldValue::decode(&mut body, depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable(entries))
    }

    /// Writes the u32 length + entries.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_u32((self.encoded_len() - 4) as u32);
        for (k, v) in &self.0 {
            wire::put_shortstr(buf, k);
            v.encode(buf);
        }
    }

    /// Encoded size including the 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        4 + self
            .0
            .iter()
            .map(|(k, v)| 1 + k.wire_bytes().len() + v.encoded_len())
            .sum::<usize>()
    }
}

impl FromIterator<(ShortStr, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (ShortStr, FieldValue)>>(iter: I) -> Self {
        FieldTable(iter.into_iter().collect())
    }
}

/// Validates a length-prefixed table without allocating (used for content headers).
pub(crate) fn skip_table(cur: &mut Cursor<'_>, depth: usize) -> Result<(), DecodeError> {
    if depth > FIELD_NESTING_DEPTH_MAX {
        return Err(DecodeError::NestingTooDeep);
    }
    let len = cur.u32()? as usize;
    let mut body = Cursor(cur.take(len)?);
    while !body.0.is_empty() {
        body.shortstr()?;
        skip_value(&mut body, depth)?;
    }
    Ok(())
}

fn skip_value(cur: &mut Cursor<'_>, depth: usize) -> Result<(), DecodeError> {
    let n = match cur.u8()? {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' => cur.u32()? as usize,
        b'F' => return skip_table(cur, depth + 1),
        b'A' => {
            if depth + 1 > FIELD_NESTING_DEPTH_MAX {
                return Err(DecodeError::NestingTooDeep);
            }
            let len = cur.u32()? as usize;
            let mut body = Cursor(cur.take(len)?);
            while !body.0.is_empty() {
                skip_value(&mut body, depth + 1)?;
            }
            return Ok(());
        }
        other => return Err(DecodeError::UnknownFieldType(other)),
    };
    cur.take(n).map(|_| ())
}
