//! Network server.
