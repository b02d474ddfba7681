//! The reference service through a real HTTP client: embedded (one process) and remote (a real
//! `target/debug/warren`, the workers as separate `reference-service` processes). This is also
//! service-kit's axum integration test (issue 12).

mod embedded;
mod harness;
mod remote;
