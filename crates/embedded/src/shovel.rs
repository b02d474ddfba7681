//! The shovel (`warren-shovel`) with both ends reachable by URL:
//! `amqp://` / `amqps://` over TCP, or `warren-embedded://NAME`
//! in-process, so an application can accept work durably on its own disk
//! (an embedded broker with a data folder) and forward it to a central
//! broker whenever that is reachable. See `warren_shovel` for the rules
//! (confirm before ack, reconnecting, `x-shovel-redelivered`).

use std::sync::Arc;

use lapin::{Connection, ConnectionProperties};
pub use warren_shovel::{AckMode, ShovelConfig, State, Status};

/// Connects to `url`: in-process for `warren-embedded://`, else over TCP.
pub async fn connect_any(url: &str, props: ConnectionProperties) -> lapin::Result<Connection> {
    if url.starts_with(crate::SCHEME) {
        crate::connect_url(url, props).await
    } else {
        Connection::connect(url, props).await
    }
}

/// The connector for [`warren_shovel::Shovel::start_with`] that
/// [`connect_any`] is.
pub fn connector() -> warren_shovel::Connector {
    Arc::new(|url: &str, props: ConnectionProperties| {
        let url = url.to_string();
        Box::pin(async move { connect_any(&url, props).await })
    })
}

/// A running shovel whose ends may be embedded brokers.
pub struct Shovel(warren_shovel::Shovel);

impl Shovel {
    /// Starts the shovel on the current tokio runtime.
    pub fn start(cfg: ShovelConfig) -> Shovel {
        Shovel(warren_shovel::Shovel::start_with(cfg, connector()))
    }

    /// Messages moved so far (settled on the source after forwarding).
    pub fn moved(&self) -> u64 {
        self.0.moved()
    }

    /// The current state.
    pub fn status(&self) -> Status {
        self.0.status()
    }

    /// Stops the shovel and waits for it.
    pub async fn stop(self) {
        self.0.stop().await
    }
}
