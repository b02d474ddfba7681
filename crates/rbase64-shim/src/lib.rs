//! Stand-in for crates.io's `rbase64`, wired in by `[patch.crates-io]` in the workspace manifest.
//!
//! `rabbitmq_http_client` (the HTTP-API client behind `warren ctl`) calls `rbase64::encode` to hash
//! passwords. The real crate declares `#[global_allocator] static GLOBAL: MiMalloc`, so linking it
//! silently replaced the broker's allocator with mimalloc: RSS per queued message went from 21 to
//! 59 B and an idle broker started with 10 MiB more resident memory (docs/benchmarks.md). This crate
//! offers the same functions, standard base64 with padding, over the `base64` crate and leaves the
//! allocator alone.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Standard base64 (RFC 4648, with padding) of `input`.
pub fn encode(input: &[u8]) -> String {
    STANDARD.encode(input)
}

/// Decodes standard base64 with padding.
pub fn decode(encoded: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(encoded)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_known_vector() {
        assert_eq!(super::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::encode(b"fo"), "Zm8=");
        assert_eq!(super::decode("Zm8=").ok(), Some(b"fo".to_vec()));
        assert!(super::decode("!!").is_err());
    }
}
