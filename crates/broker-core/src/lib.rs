//! Broker core: vhosts, exchanges, queues, bindings, consumers, routing and
//! delivery. No sockets, no files: the server hands it frames of open
//! connections (channels 1..), and it answers by appending encoded frames to
//! per-connection buffers that [`Broker::flush`] passes to each connection's
//! [`ConnSink`]. Durable state goes through [`persist::Persistence`].
//!
//! Everything lives behind one lock held by the server, taken once per batch
//! of frames read from a socket, so per-message cost is a few map lookups.

pub mod access;
pub mod access_state;
pub mod arena;
mod assembly;
mod batch;
mod bindings;
mod broker;
mod channel_table;
pub mod config;
mod consumer_timeout;
pub mod consumers;
pub mod dedup;
pub mod delayed;
mod delayed_exchange;
mod delivery;
pub mod direct;
mod durability;
mod enqueue;
mod entry;
pub mod error;
pub mod exchange;
pub mod global_stats;
pub mod headers;
pub mod inspect;
pub mod message;
mod ops;
pub mod params;
pub mod password;
pub mod persist;
mod publish_cache;
pub mod queue;
pub mod queue_args;
pub mod queue_type;
mod quorum;
pub mod ready;
mod recover;
mod reply_to;
mod route;
mod session;
pub mod stats;
mod tables;
mod tick;
pub mod topic;
mod topic_trie;
mod topology;
mod vhost;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
pub(crate) mod testkit;

pub use broker::Broker;
pub use config::CoreConfig;
pub use entry::AdminError;
pub use error::AmqpError;
pub use ops::publish::WireOutcome;
pub use recover::RestoreStats;
pub use session::{ConnDetails, ConnInfo, ConnSink};

/// Identity of a client connection, assigned by [`Broker::open_connection`].
pub type ConnId = u64;

/// RabbitMQ's refusal of a login (the server refuses EXTERNAL without a
/// verified certificate with it, before the user store is asked).
pub use password::login_refused;
pub use tables::{detached_table, EncodedTable};
