//! Handlers: the AMQP methods and connection events, each combining the
//! broker's parts (see `broker.rs`). Parts never call into this module.

pub mod admin;
pub(crate) mod bind;
pub(crate) mod channel;
pub(crate) mod confirm_tx;
pub(crate) mod connection;
pub(crate) mod consume;
pub(crate) mod exchange_methods;
pub(crate) mod permit;
pub(crate) mod publish;
pub(crate) mod queue_methods;
pub(crate) mod settle;
