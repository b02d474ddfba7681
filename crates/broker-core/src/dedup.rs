//! Message deduplication, as LavinMQ offers it (beyond RabbitMQ).
//!
//! A queue or exchange declared with `x-message-deduplication: true` drops a
//! message whose deduplication header value was seen within the window:
//! the header is `x-deduplication-header` unless the argument of that name
//! names another; a message without it is never a duplicate (message-id is
//! NOT a fallback, as in LavinMQ). The window is the last `x-cache-size`
//! distinct values (default [`DEDUP_CACHE_SIZE_DEFAULT`]; the oldest
//! inserted is evicted first), each for `x-cache-ttl` ms (the message's own
//! `x-cache-ttl` header overrides it; none = until evicted). A dropped
//! message is still confirmed with an ack. Cost: one hash lookup per
//! message, only on queues and exchanges that enable it.

use std::collections::VecDeque;

use amqp_codec::{FieldTable, FieldValue, ShortStr};
use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;

use crate::message::now_ms;

/// Entries kept when `x-cache-size` is not given (LavinMQ's default).
pub const DEDUP_CACHE_SIZE_DEFAULT: u32 = 128;

/// Largest `x-cache-size` accepted, in entries (bounds memory: an entry
/// costs its key bytes plus about 80 bytes).
pub const DEDUP_CACHE_SIZE_MAX: u32 = 10_000_000;

/// The header holding the deduplication key unless configured otherwise.
pub const DEDUP_HEADER_DEFAULT: &str = "x-deduplication-header";

/// One cached key: when it was inserted (order) and when it expires.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Insertion number, matching its `order` queue entry.
    order: u64,
    /// Expiry on `now_ms`'s clock; `u64::MAX` = never.
    expires_ms: u64,
}

/// A bounded deduplication cache with its settings.
#[derive(Debug)]
pub struct Dedup {
    /// `x-cache-size`: most keys kept, in entries.
    size_max_entries: usize,
    /// `x-cache-ttl`: how long a key counts, in ms (None = until evicted).
    ttl_ms: Option<u64>,
    /// The header that holds the key.
    header: ShortStr,
    /// Live keys (encoded field values, type tag included).
    entries: FxHashMap<Bytes, Entry>,
    /// Keys in insertion order for eviction; entries whose order no longer
    /// matches `entries` are stale and skipped. At most twice
    /// `size_max_entries` long (compacted beyond).
    order: VecDeque<(Bytes, u64)>,
    /// Insertion counter.
    next_order: u64,
    /// Messages dropped as duplicates (for stats).
    pub dropped: u64,
}

fn int_arg(args: &FieldTable, key: &str) -> Result<Option<i64>, String> {
    match args.get(key) {
        None => Ok(None),
        Some(v) => match (v, v.as_i64()) {
            (FieldValue::Bool(_), _) | (_, None) => Err(format!("{key} header not a Int")),
            (_, Some(i)) => Ok(Some(i)),
        },
    }
}

impl Dedup {
    /// The deduplication settings in queue or exchange arguments: `None`
    /// unless `x-message-deduplication` is true; an error text (406) for a
    /// malformed argument.
    pub fn from_args(args: &FieldTable) -> Result<Option<Dedup>, String> {
        match args.get("x-message-deduplication") {
            None => return Ok(None),
            Some(FieldValue::Bool(true)) => {}
            Some(FieldValue::Bool(false)) => return Ok(None),
            Some(_) => return Err("x-message-deduplication header not a Bool".into()),
        }
        let size = int_arg(args, "x-cache-size")?.unwrap_or(i64::from(DEDUP_CACHE_SIZE_DEFAULT));
        if size < 1 || size > i64::from(DEDUP_CACHE_SIZE_MAX) {
            return Err(format!(
                "x-cache-size must be between 1 and {DEDUP_CACHE_SIZE_MAX}"
            ));
        }
        let ttl = int_arg(args, "x-cache-ttl")?;
        if ttl.is_some_and(|t| t < 0) {
            return Err("x-cache-ttl has to be positive".into());
        }
        let header = match args.get("x-deduplication-header") {
            None => ShortStr::from(DEDUP_HEADER_DEFAULT),
            Some(v) => match v.as_str() {
                Some(s) => ShortStr::from(s),
                None => return Err("x-deduplication-header header not a String".into()),
            },
        };
        Ok(Some(Dedup {
            size_max_entries: size as usize,
            ttl_ms: ttl.map(|t| t as u64),
            header,
            entries: FxHashMap::default(),
            order: VecDeque::new(),
            next_order: 0,
            dropped: 0,
        }))
    }

    /// Whether the message with these headers is a duplicate; if not, its
    /// key (if any) is remembered.
    pub fn is_duplicate(&mut self, headers: Option<&FieldTable>) -> bool {
        let Some(h) = headers else {
            return false;
        };
        let Some(v) = h.get(&self.header) else {
            return false;
        };
        let mut buf = BytesMut::with_capacity(v.encoded_len());
        v.encode(&mut buf);
        let key = buf.freeze();
        let ttl = match h.get("x-cache-ttl").and_then(|t| t.as_i64()) {
            Some(t) if t >= 0 => Some(t as u64),
            _ => self.ttl_ms,
        };
        let needs_time = ttl.is_some() || self.ttl_ms.is_some();
        self.check_key(key, ttl, if needs_time { now_ms() } else { 0 })
    }

    /// `is_duplicate` for an encoded key at time `now` (ms).
    fn check_key(&mut self, key: Bytes, ttl_ms: Option<u64>, now: u64) -> bool {
        if let Some(e) = self.entries.get(&key) {
            if e.expires_ms > now {
                self.dropped += 1;
                return true;
            }
            self.entries.remove(&key);
        }
        while self.entries.len() >= self.size_max_entries {
            let Some((old, order)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.order == order) {
                self.entries.remove(&old);
            }
        }
        self.next_order += 1;
        let expires_ms = ttl_ms.map_or(u64::MAX, |t| now.saturating_add(t));
        self.entries.insert(
            key.clone(),
            Entry {
                order: self.next_order,
                expires_ms,
            },
        );
        self.order.push_back((key, self.next_order));
        if self.order.len() > 2 * self.size_max_entries {
            let entries = &self.entries;
            self.order
                .retain(|(k, o)| entries.get(k).is_some_and(|e| e.order == *o));
        }
        false
    }

    /// Keys currently cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(ShortStr::from(*k), v.clone());
        }
        t
    }

    #[test]
    fn off_unless_enabled_and_args_checked() {
        assert!(Dedup::from_args(&FieldTable::new())
            .unwrap_or(None)
            .is_none());
        let bad = args(&[
            ("x-message-deduplication", FieldValue::Bool(true)),
            (
                "x-cache-size",
                FieldValue::LongStr(Bytes::from_static(b"x")),
            ),
        ]);
        assert!(Dedup::from_args(&bad).is_err());
        let zero = args(&[
            ("x-message-deduplication", FieldValue::Bool(true)),
            ("x-cache-size", FieldValue::I32(0)),
        ]);
        assert!(Dedup::from_args(&zero).is_err());
    }

    #[test]
    fn window_by_size_and_ttl() {
        let a = args(&[
            ("x-message-deduplication", FieldValue::Bool(true)),
            ("x-cache-size", FieldValue::I32(2)),
        ]);
        let Ok(Some(mut d)) = Dedup::from_args(&a) else {
            panic!("enabled");
        };
        let k = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(!d.check_key(k("a"), None, 0));
        assert!(d.check_key(k("a"), None, 0));
        assert!(!d.check_key(k("b"), None, 0));
        assert!(!d.check_key(k("c"), None, 0)); // evicts "a"
        assert!(!d.check_key(k("a"), None, 0));
        assert!(d.check_key(k("c"), None, 0));
        assert_eq!(d.len(), 2);
        assert!(!d.check_key(k("t"), Some(10), 100));
        assert!(d.check_key(k("t"), Some(10), 109));
        assert!(!d.check_key(k("t"), Some(10), 110));
        for i in 0..100u32 {
            d.check_key(Bytes::from(i.to_string()), Some(1), u64::from(i) * 2);
        }
        assert!(d.len() <= 2 && d.order.len() <= 4 + 1);
        assert_eq!(d.dropped, 3);
    }

    #[test]
    fn header_name_and_absent_header() {
        let a = args(&[
            ("x-message-deduplication", FieldValue::Bool(true)),
            (
                "x-deduplication-header",
                FieldValue::LongStr(Bytes::from_static(b"id")),
            ),
        ]);
        let Ok(Some(mut d)) = Dedup::from_args(&a) else {
            panic!("enabled");
        };
        assert!(!d.is_duplicate(None));
        let h = args(&[("id", FieldValue::I32(1))]);
        assert!(!d.is_duplicate(Some(&h)));
        assert!(d.is_duplicate(Some(&h)));
        let other = args(&[("x-deduplication-header", FieldValue::I32(1))]);
        assert!(!d.is_duplicate(Some(&other)));
        assert!(!d.is_duplicate(Some(&other)));
    }
}
