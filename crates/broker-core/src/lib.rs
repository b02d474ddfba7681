//! Broker core: vhosts, exchanges, queues, bindings, consumers, routing and
//! delivery. No sockets, no files: the server feeds it decoded commands and
//! carries the frames it produces; durable state goes through [`persist`].
pub mod persist;
