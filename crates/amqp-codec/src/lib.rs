//! AMQP 0-9-1 codec (sans-I/O).
