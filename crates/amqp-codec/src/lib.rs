//! AMQP 0-9-1 codec (sans-I/O) for warren, following RabbitMQ 3.x behaviour.
//!
//! * [`parse_frame`] / `encode_*` — the frame layer;
//! * [`Method`] — every method of the RabbitMQ dialect (classes connection, channel,
//!   exchange, queue, basic, confirm, tx, including RabbitMQ's extensions);
//! * [`ContentHeader`], [`BasicProperties`] — content headers and properties;
//! * [`FieldTable`], [`FieldValue`] — field tables with RabbitMQ's type tags;
//! * [`DecodeError`], [`FrameError`] — with the reply code/text RabbitMQ sends.
//!
//! No I/O happens here: callers feed bytes in and get bytes out. Decoding never
//! panics and never allocates based on an untrusted length field.

pub mod constants;
pub mod error;
pub mod field;
pub mod frame;
pub mod method;
pub mod properties;
pub mod publish;
pub mod shortstr;
mod wire;

pub use constants::*;
pub use error::DecodeError;
pub use field::{FieldTable, FieldValue, FIELD_NESTING_DEPTH_MAX};
pub use frame::{
    encode_body_frames, encode_content_header_frame, encode_frame, encode_heartbeat,
    encode_method_frame, parse_frame, Frame, FrameError,
};
pub use method::*;
pub use properties::{
    peek_basic_properties, peek_delivery_mode, peek_expiration, peek_priority, property_flags,
    BasicProperties, ContentHeader, PropsPeek, FLAG_REPLY_TO, FLAG_USER_ID,
};
pub use publish::{peek_publish, WirePublish};
pub use shortstr::{bytes_eq, Name, ShortStr};
