//! Bounds-checked primitive readers/writers shared by all decoders.
//!
//! Every reader checks `remaining()` before touching the buffer so that no input can
//! make `bytes`' panicking getters fire.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::shortstr::ShortStr;

#[inline]
fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

#[inline]
pub(crate) fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

#[inline]
pub(crate) fn get_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

#[inline]
pub(crate) fn get_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

#[inline]
pub(crate) fn get_u64(buf: &mut Bytes) -> Result<u64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

/// Splits `n` bytes off the front, zero-copy.
#[inline]
pub(crate) fn get_bytes(buf: &mut Bytes, n: usize) -> Result<Bytes, DecodeError> {
    need(buf, n)?;
    Ok(buf.split_to(n))
}

#[inline]
pub(crate) fn get_shortstr(buf: &mut Bytes) -> Result<ShortStr, DecodeError> {
    let len = get_u8(buf)? as usize;
    ShortStr::from_bytes(get_bytes(buf, len)?)
}

#[inline]
pub(crate) fn get_longstr(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_u32(buf)? as usize;
    get_bytes(buf, len)
}

/// Writes a shortstr; see [`ShortStr`] for the (documented) >255 byte behaviour.
#[inline]
pub(crate) fn put_shortstr(buf: &mut BytesMut, s: &ShortStr) {
    let b = s.wire_bytes();
    buf.put_u8(b.len() as u8);
    buf.put_slice(b);
}

#[inline]
pub(crate) fn put_longstr(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u32(b.len() as u32);
    buf.put_slice(b);
}

/// Slice-based cursor used by the allocation-free validators/peekers.
pub(crate) struct Cursor<'a>(pub(crate) &'a [u8]);

impl<'a> Cursor<'a> {
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    pub(crate) fn shortstr(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.u8()? as usize;
        utf8(self.take(n)?).ok_or(DecodeError::InvalidUtf8)
    }
}

/// UTF-8 validation with an inline ASCII fast path: names and short
/// strings are nearly always ASCII, and the general validator is a call.
#[inline]
pub(crate) fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}
