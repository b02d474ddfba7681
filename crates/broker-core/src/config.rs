//! Limits the core enforces. Every limit carries its unit in its name.

/// Core limits; the server fills these from the command line/config file.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Largest frame we accept and offer in connection.tune, overhead included.
    pub frame_size_max_bytes: u32,
    /// Highest channel number a client may open (offered in connection.tune).
    pub channel_max: u16,
    /// Largest message body accepted; RabbitMQ 3.10's default is 128 MiB.
    pub message_size_max_bytes: u64,
    /// Deliveries stop going to a connection whose socket has this many bytes
    /// queued but unwritten; they resume when the writer catches up. This is
    /// what bounds memory for no-ack consumers on slow sockets.
    pub write_buffer_bytes_max: usize,
    /// What one transaction may hold before tx.commit, per channel: its
    /// publishes (body, properties, names and ~100 bytes of bookkeeping each)
    /// and settlements (~32 bytes each). A publish or ack beyond it closes
    /// the channel with 406 PRECONDITION_FAILED (RabbitMQ has no such
    /// limit; this bounds what a client can make the broker buffer).
    pub tx_uncommitted_bytes_max: usize,
    /// Consumers per channel.
    pub consumers_per_channel_max: usize,
    /// A delivery left unacknowledged longer than this closes its channel
    /// with 406 PRECONDITION_FAILED (RabbitMQ's `consumer_timeout`, default
    /// 30 min); 0 turns it off. A queue's `x-consumer-timeout` replaces it.
    pub consumer_timeout_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            frame_size_max_bytes: 131_072,
            channel_max: 2047,
            message_size_max_bytes: 128 * 1024 * 1024,
            write_buffer_bytes_max: 1024 * 1024,
            tx_uncommitted_bytes_max: 64 << 20,
            consumers_per_channel_max: 65_535,
            consumer_timeout_ms: 1_800_000,
        }
    }
}
