//! AMQP exceptions as the core raises them.
//!
//! RabbitMQ formats every reply text as `NAME - detail`; [`AmqpError`] keeps
//! the code, the detail and the method that failed, and knows whether the
//! code is a channel ("soft") or connection ("hard") exception.

use amqp_codec::reply;

/// An exception to send to the client with channel.close or connection.close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    /// Full reply text, already prefixed with the code's name.
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    pub fn new(code: u16, detail: impl std::fmt::Display) -> AmqpError {
        AmqpError {
            code,
            text: format!("{} - {}", code_name(code), detail),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Records which method caused the exception (sent back in the close).
    pub fn during(mut self, class_id: u16, method_id: u16) -> AmqpError {
        if self.class_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// Connection ("hard") exceptions close the whole connection.
    pub fn is_connection_error(&self) -> bool {
        !matches!(
            self.code,
            reply::CONTENT_TOO_LARGE
                | reply::NO_ROUTE
                | reply::NO_CONSUMERS
                | reply::ACCESS_REFUSED
                | reply::NOT_FOUND
                | reply::RESOURCE_LOCKED
                | reply::PRECONDITION_FAILED
        )
    }

    pub fn not_found(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::NOT_FOUND, detail)
    }
    pub fn access_refused(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::ACCESS_REFUSED, detail)
    }
    pub fn precondition_failed(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::PRECONDITION_FAILED, detail)
    }
    pub fn resource_locked(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::RESOURCE_LOCKED, detail)
    }
    pub fn not_allowed(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::NOT_ALLOWED, detail)
    }
    pub fn command_invalid(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::COMMAND_INVALID, detail)
    }
    pub fn channel_error(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::CHANNEL_ERROR, detail)
    }
    pub fn unexpected_frame(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::UNEXPECTED_FRAME, detail)
    }
    pub fn frame_error(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::FRAME_ERROR, detail)
    }
    pub fn not_implemented(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::NOT_IMPLEMENTED, detail)
    }
    pub fn internal(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(reply::INTERNAL_ERROR, detail)
    }
}

/// The upper-case names RabbitMQ puts in front of reply texts.
pub fn code_name(code: u16) -> &'static str {
    match code {
        reply::SUCCESS => "OK",
        reply::CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        reply::NO_ROUTE => "NO_ROUTE",
        reply::NO_CONSUMERS => "NO_CONSUMERS",
        reply::CONNECTION_FORCED => "CONNECTION_FORCED",
        reply::INVALID_PATH => "INVALID_PATH",
        reply::ACCESS_REFUSED => "ACCESS_REFUSED",
        reply::NOT_FOUND => "NOT_FOUND",
        reply::RESOURCE_LOCKED => "RESOURCE_LOCKED",
        reply::PRECONDITION_FAILED => "PRECONDITION_FAILED",
        reply::FRAME_ERROR => "FRAME_ERROR",
        reply::SYNTAX_ERROR => "SYNTAX_ERROR",
        reply::COMMAND_INVALID => "COMMAND_INVALID",
        reply::CHANNEL_ERROR => "CHANNEL_ERROR",
        reply::UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        reply::RESOURCE_ERROR => "RESOURCE_ERROR",
        reply::NOT_ALLOWED => "NOT_ALLOWED",
        reply::NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        reply::INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "ERROR",
    }
}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;

// Exceptions several handlers raise, with RabbitMQ 3.10's texts.

pub(crate) fn no_exchange(name: &str, vhost: &str) -> AmqpError {
    AmqpError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
}

pub(crate) fn no_queue(name: &str, vhost: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}

pub(crate) fn locked(name: &str, vhost: &str) -> AmqpError {
    AmqpError::resource_locked(format!(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
    ))
}

pub(crate) fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

pub(crate) fn inequivalent(
    what: &str,
    arg: &str,
    name: &str,
    vhost: &str,
    received: impl std::fmt::Display,
    current: impl std::fmt::Display,
) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
    ))
}

/// basic.ack / nack / reject of a tag the channel does not hold.
pub(crate) fn unknown_delivery_tag(tag: u64) -> AmqpError {
    AmqpError::precondition_failed(format!("unknown delivery tag {tag}"))
}

/// tx.commit / tx.rollback on a channel without tx.select.
pub(crate) fn not_transactional() -> AmqpError {
    AmqpError::precondition_failed("channel is not transactional")
}

/// The vhost of a live connection is gone (cannot happen while vhosts are
/// never deleted).
pub(crate) fn vhost_gone() -> AmqpError {
    AmqpError::internal("vhost gone")
}

/// A frame for a connection the core no longer has.
pub(crate) fn no_connection() -> AmqpError {
    AmqpError::internal("no connection")
}

/// RabbitMQ's `check_resource_access` refusal (`kind` "exchange" or "queue").
pub(crate) fn resource_refused(kind: &str, name: &str, vhost: &str, user: &str) -> AmqpError {
    AmqpError::access_refused(format!(
        "access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
    ))
}

/// RabbitMQ's `check_topic_access` refusal.
pub(crate) fn topic_refused(
    routing_key: &str,
    exchange: &str,
    vhost: &str,
    user: &str,
) -> AmqpError {
    AmqpError::access_refused(format!(
        "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
    ))
}

/// connection.open to a vhost the user has no permission in.
pub fn vhost_refused(vhost: &str, user: &str) -> AmqpError {
    AmqpError::not_allowed(format!(
        "access to vhost '{vhost}' refused for user '{user}'"
    ))
}

/// A transaction grew past `tx_uncommitted_bytes_max` (a warren limit:
/// RabbitMQ buffers transactions without one); the channel is closed and
/// the transaction dropped, as a rollback would.
pub fn tx_too_large(limit_bytes: usize) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "transaction exceeds tx_uncommitted_bytes_max ({limit_bytes} bytes): \
         commit or roll back more often"
    ))
}
