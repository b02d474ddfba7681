//! Black-box AMQP 0-9-1 conformance tests. Written against RabbitMQ 3.10
//! (which defines correct behaviour) and run against warren.
//!
//! Set WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/%2f to test a running
//! broker; otherwise the warren binary (WARREN_BIN or target/debug/warren) is
//! spawned per test.

mod harness;
mod node;
mod raw;

mod access;
mod basic;
mod confirms_tx;
mod connection;
mod consumers;
mod ctl;
mod delayed;
mod durability;
mod errors;
mod exchanges;
mod https;
mod kill;
mod kill_disk;
mod lifecycle;
mod mgmt;
mod mgmt_admin;
mod mgmt_admin_defs;
mod mgmt_api;
mod mgmt_params;
mod overload;
mod overload_scale;
mod priority;
mod prometheus;
mod publish_runs;
mod queue_features;
mod queue_types;
mod queues;
mod shovel;
mod tls;
