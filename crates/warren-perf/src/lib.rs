//! warren-perf: a load generator for any AMQP 0-9-1 broker, in the spirit of
//! RabbitMQ PerfTest and lavinmqperf, built on warren's sans-I/O `amqp-codec`.
//!
//! Code map:
//! * [`uri`] — `amqp://user:pass@host:port/vhost` parsing (`amqps://` for TLS);
//! * [`stream`] — the socket under a connection: plain TCP or TLS (rustls);
//! * [`client`] — a minimal async client: handshake (PLAIN), synchronous setup RPCs,
//!   then a split into a read half and a write half for the hot loops;
//! * [`producer`] / [`consumer`] — the hot loops (batched publishes with a confirm
//!   window; consumption with `multiple` acks);
//! * [`stats`] — shared counters, the once-a-second reporter, medians, percentiles,
//!   a tiny JSON writer and broker RSS from `/proc`;
//! * one file per scenario: [`throughput`], [`latency`], [`publish_drain`],
//!   [`connection_churn`], [`queue_churn`], [`idle_connections`], [`topology`],
//!   [`declare_queues`] (queues left in place for a later run);
//! * [`relay`] — the raw-TCP-relay baseline (`relay` server, `relay-throughput`);
//! * [`sink`] — a fake broker that completes the handshake and discards everything,
//!   to measure the generator's own ceiling.
//!
//! Invariant: nothing read from the network is trusted; malformed input is an error,
//! never a panic.

pub mod client;
pub mod connection_churn;
pub mod consumer;
pub mod declare_queues;
pub mod delayed;
pub mod idle_connections;
pub mod latency;
pub mod producer;
pub mod publish_drain;
pub mod queue_churn;
pub mod relay;
pub mod sink;
pub mod stats;
pub mod stream;
pub mod throughput;
pub mod topology;
pub mod uri;
