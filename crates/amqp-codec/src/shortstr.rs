//! AMQP short strings.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

use crate::error::DecodeError;

/// AMQP short string: valid UTF-8, at most 255 bytes; zero-copy slice of the frame it
/// came from.
///
/// Decoded values always satisfy both invariants. Values built with `From<&str>` /
/// `From<String>` are only checked for length by a `debug_assert!` (they are meant for
/// broker-generated names that are known to be short); such a value keeps the full
/// string in memory, but the encoder writes only its first 255 bytes, because the
/// wire length prefix is one octet. Use [`ShortStr::try_from_str`] for untrusted
/// input.
#[derive(Clone, PartialOrd, Ord, Default)]
pub struct ShortStr(Bytes);

/// Two clones of one name share their bytes: comparing the pointers first
/// skips the byte comparison for the broker's hot lookups (queue names in
/// routing results and consumer tags are clones of the stored keys).
impl PartialEq for ShortStr {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        (self.0.as_ptr() == other.0.as_ptr() && self.0.len() == other.0.len())
            || bytes_eq(&self.0, &other.0)
    }
}

/// Byte-string equality done inline, 8 bytes at a time. Names compared on
/// the hot path are short; a `memcmp` call per comparison (what `[u8]::eq`
/// compiles to) was the largest single item in the 16 B profile.
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut a8).zip(&mut b8) {
        let x = u64::from_ne_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
        let y = u64::from_ne_bytes([y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]]);
        if x != y {
            return false;
        }
    }
    let (ra, rb) = (a8.remainder(), b8.remainder());
    let mut i = 0;
    while i < ra.len() {
        if ra[i] != rb[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A name to look up in maps keyed by [`ShortStr`] (or other keys that
/// borrow as `Name`): hashes exactly like `str`, compares with
/// [`bytes_eq`]. `map.get(Name::new(s))` instead of `map.get(s)` keeps a
/// hot lookup free of `memcmp` calls.
#[repr(transparent)]
#[derive(Debug)]
pub struct Name(str);

impl Name {
    pub fn new(s: &str) -> &Name {
        // SAFETY: `Name` is `repr(transparent)` over `str`, so the two
        // pointer types have the same layout and metadata.
        unsafe { &*(s as *const str as *const Name) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for Name {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        bytes_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Name {}

impl Borrow<Name> for ShortStr {
    fn borrow(&self) -> &Name {
        Name::new(self.as_str())
    }
}

impl Eq for ShortStr {}

impl ShortStr {
    /// Maximum encoded length.
    pub const MAX_LEN: usize = 255;

    /// Checked constructor: fails on strings longer than 255 bytes.
    pub fn try_from_str(s: &str) -> Result<ShortStr, DecodeError> {
        if s.len() > Self::MAX_LEN {
            return Err(DecodeError::ShortStrTooLong(s.len()));
        }
        Ok(ShortStr(Bytes::copy_from_slice(s.as_bytes())))
    }

    /// Wraps bytes sliced from a frame, validating UTF-8 and length.
    pub fn from_bytes(b: Bytes) -> Result<ShortStr, DecodeError> {
        if b.len() > Self::MAX_LEN {
            return Err(DecodeError::ShortStrTooLong(b.len()));
        }
        if std::str::from_utf8(&b).is_err() {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(ShortStr(b))
    }

    /// No allocation, no copy.
    pub fn from_static(s: &'static str) -> Self {
        debug_assert!(s.len() <= Self::MAX_LEN, "ShortStr longer than 255 bytes");
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either validates UTF-8 (`from_bytes`) or starts
        // from a `str`, and the bytes are never mutated afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy in its own allocation. Decoded strings are slices of the
    /// frame they came in, so one kept for long (a queue or exchange name,
    /// a consumer tag, a binding key) would pin that whole read buffer.
    pub fn detached(&self) -> ShortStr {
        ShortStr(Bytes::copy_from_slice(&self.0))
    }

    /// The underlying shared buffer (cheap clone).
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// The bytes the encoder writes: at most 255.
    pub(crate) fn wire_bytes(&self) -> &[u8] {
        &self.0[..self.0.len().min(Self::MAX_LEN)]
    }
}

impl Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// Hashes exactly like the `str`, which makes `Borrow<str>` sound for `HashMap` lookups.
impl Hash for ShortStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<str> for ShortStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        debug_assert!(s.len() <= Self::MAX_LEN, "ShortStr longer than 255 bytes");
        ShortStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        debug_assert!(s.len() <= Self::MAX_LEN, "ShortStr longer than 255 bytes");
        ShortStr(Bytes::from(s.into_bytes()))
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn bytes_eq_matches_slice_eq() {
        let words: Vec<Vec<u8>> = (0..40usize)
            .map(|n| (0..n).map(|i| (i * 7 % 251) as u8).collect())
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(bytes_eq(a, b), a == b);
                let mut c = b.clone();
                if let Some(last) = c.last_mut() {
                    *last ^= 1;
                    assert_eq!(bytes_eq(a, &c), *a == c);
                }
            }
        }
    }

    #[test]
    fn name_lookups_find_shortstr_keys() {
        let mut m = std::collections::HashMap::new();
        m.insert(ShortStr::from("queue-one"), 1);
        m.insert(ShortStr::from(""), 2);
        assert_eq!(m.get(Name::new("queue-one")), Some(&1));
        assert_eq!(m.get(Name::new("")), Some(&2));
        assert_eq!(m.get(Name::new("queue-two")), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn borrow_lookup_and_eq() {
        let mut m = HashMap::new();
        m.insert(ShortStr::from("amq.direct"), 1);
        assert_eq!(m.get("amq.direct"), Some(&1));
        assert_eq!(ShortStr::from_static("x"), "x");
        assert_eq!(format!("{:?}", ShortStr::from("a\"b")), "\"a\\\"b\"");
        assert_eq!(ShortStr::from("q").to_string(), "q");
    }

    #[test]
    fn validation() {
        assert!(ShortStr::try_from_str(&"a".repeat(255)).is_ok());
        assert_eq!(
            ShortStr::try_from_str(&"a".repeat(256)),
            Err(DecodeError::ShortStrTooLong(256))
        );
        assert_eq!(
            ShortStr::from_bytes(Bytes::from_static(b"\xff")),
            Err(DecodeError::InvalidUtf8)
        );
    }
}
