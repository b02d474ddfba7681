//! The kit's typed errors.

use std::time::Duration;

/// What can go wrong when using the kit.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The broker could not be reached (or the connection was lost) and did not come back before the deadline.
    #[error("not connected to the broker within {0:?}")]
    NotConnected(Duration),
    /// The publishing connection is blocked by the broker (`connection.blocked`, e.g. a resource alarm) past the deadline.
    #[error("broker blocked publishing for longer than {0:?}")]
    Blocked(Duration),
    /// Every confirm slot of the channel pool stayed taken past the deadline.
    #[error("publish confirm window stayed full for longer than {0:?}")]
    WindowFull(Duration),
    /// The publish was sent but no confirm arrived before the deadline (it may or may not have been routed).
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
    /// A mandatory publish could not be routed to any queue (`basic.return`).
    #[error("message returned by the broker: {code} {text}")]
    Returned {
        /// AMQP reply code (312 NO_ROUTE).
        code: u16,
        /// AMQP reply text.
        text: String,
    },
    /// The broker refused the message (`basic.nack`).
    #[error("message nacked by the broker")]
    Nacked,
    /// An RPC call got no reply in time.
    #[error("no RPC reply within {0:?}")]
    RpcTimeout(Duration),
    /// The kit was shut down.
    #[error("shut down")]
    Shutdown,
    /// An AMQP operation failed.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// A local I/O operation (the inbox file) failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl KitError {
    /// A low-cardinality name of the variant (the spans' `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            KitError::NotConnected(_) => "not_connected",
            KitError::Blocked(_) => "blocked",
            KitError::WindowFull(_) => "window_full",
            KitError::ConfirmTimeout(_) => "confirm_timeout",
            KitError::Returned { .. } => "returned",
            KitError::Nacked => "nacked",
            KitError::RpcTimeout(_) => "rpc_timeout",
            KitError::Shutdown => "shutdown",
            KitError::Amqp(_) => "amqp",
            KitError::Io(_) => "io",
            KitError::Config(_) => "config",
        }
    }

    /// True for errors that mean "try again later" (an HTTP layer maps them to 503).
    pub fn is_backpressure(&self) -> bool {
        matches!(
            self,
            KitError::NotConnected(_)
                | KitError::Blocked(_)
                | KitError::WindowFull(_)
                | KitError::ConfirmTimeout(_)
        )
    }
}

/// Result alias of the kit.
pub type Result<T> = std::result::Result<T, KitError>;
