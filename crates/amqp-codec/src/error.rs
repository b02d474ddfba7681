//! Decode errors and the RabbitMQ reply each one maps to.
//!
//! # What RabbitMQ 3.x answers (researched in rabbit_reader.erl,
//! rabbit_command_assembler.erl, rabbit_binary_parser.erl, rabbit_misc.erl and the
//! generated rabbit_framing_amqp_0_9_1.erl)
//!
//! Every reply text is `"<CONSTANT_NAME> - <explanation>"`, cut to 252 bytes + `"..."`
//! when longer than 255 (`rabbit_binary_generator:amqp_exception_explanation/2`).
//! All of these are hard errors, i.e. `connection.close`, never `channel.close`.
//!
//! * Method arguments too short / too long (`decode_method_fields` has one exact
//!   binary pattern per method and a catch-all calling `rabbit_misc:frame_error/2`):
//!   `501 "FRAME_ERROR - cannot decode <<1,2,3>>"` (`~w` of the argument bytes, i.e.
//!   after class/method id), with class/method id of the offending method in the
//!   close. -> [`DecodeError::MalformedMethod`].
//! * Method frame shorter than 4 bytes, content header shorter than 12 bytes
//!   (`analyze_frame/3` returns `error`, then `frame_error(unknown_frame, ...)`):
//!   `501 "FRAME_ERROR - type 1, all octets = <<0,10>>: unknown_frame"`
//!   (`~p` of at most the first 16 payload bytes; "first 16" when longer).
//!   -> [`DecodeError::UnknownFrameLayout`].
//! * Unknown class/method id: `lookup_method_name/1` calls
//!   `exit({unknown_method_id, {C, M}})`, which is not an `#amqp_error{}`; it escapes
//!   the reader loop and RabbitMQ closes the socket *without* sending
//!   `connection.close`. Since a broker that wants to be polite needs *some* code, we
//!   map it to `503 "COMMAND_INVALID - unknown method {C,M}"`; callers that want
//!   byte-exact RabbitMQ behaviour check [`DecodeError::rabbit_sends_close`].
//! * Unknown field-table type tag: `parse_table/1` has no catch-all clause, so a
//!   `function_clause` crash follows. On channel 0 (`handle_method0` catches every
//!   class) and for content properties (decoded in the channel process, whose crash is
//!   mapped by `handle_exception/3`) the client gets
//!   `541 "INTERNAL_ERROR"` (non-`#amqp_error{}` reasons map to the bare constant
//!   text). For method frames on other channels the reader itself crashes (socket
//!   closed, no `connection.close`).
//! * Malformed UTF-8 in a shortstr: `rabbit_binary_parser:assert_utf8/1`:
//!   `501 "FRAME_ERROR - Malformed UTF-8 in shortstr"`.
//! * Property flags: RabbitMQ reads exactly one 16-bit flag word for class basic
//!   (14 properties) and *ignores* the low two bits (bit 1 reserved, bit 0
//!   continuation). This codec does the same, so [`DecodeError::BadPropertyFlags`] is
//!   never produced. Malformed property *values* (truncated, bad table) crash the
//!   channel process when it decodes them: `541 "INTERNAL_ERROR"`, which is what a
//!   [`DecodeError::InvalidProperties`] maps to.
//! * Field-table nesting deeper than [`crate::FIELD_NESTING_DEPTH_MAX`]: RabbitMQ has
//!   no limit (Erlang recursion); this codec refuses as a safety measure and answers
//!   like any other undecodable frame: `501 "FRAME_ERROR - ..."`.

use bytes::Bytes;

use crate::constants::reply;

/// Why a method, content header, field table or property list could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated input")]
    Truncated,
    /// Bytes were left over after a complete value (e.g. inside a table length).
    #[error("trailing bytes after value")]
    TrailingBytes,
    /// A shortstr (or a table key) is not valid UTF-8.
    #[error("malformed UTF-8 in shortstr")]
    InvalidUtf8,
    /// A shortstr longer than 255 bytes was offered to [`crate::ShortStr::try_from_str`].
    #[error("shortstr longer than 255 bytes ({0})")]
    ShortStrTooLong(usize),
    /// Field-table value with a type tag RabbitMQ does not accept.
    #[error("unknown field table type {:?}", char::from(*.0))]
    UnknownFieldType(u8),
    /// Tables/arrays nested deeper than [`crate::FIELD_NESTING_DEPTH_MAX`].
    #[error("field table nesting too deep")]
    NestingTooDeep,
    /// Class/method id pair that is not part of the RabbitMQ 0-9-1 protocol.
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// Property flags that cannot be interpreted. Not produced for class basic:
    /// RabbitMQ ignores the reserved and continuation bits of its single flag word
    /// and so does this codec; kept so callers can map it should stricter
    /// validation ever be added.
    #[error("bad property flags")]
    BadPropertyFlags,
    /// A frame payload too short for its frame type (method < 4, header < 12 bytes).
    #[error("frame type {frame_type} payload too short ({} bytes)", payload.len())]
    UnknownFrameLayout { frame_type: u8, payload: Bytes },
    /// Method arguments truncated or followed by extra bytes.
    #[error("cannot decode arguments of method {class_id}.{method_id}")]
    MalformedMethod {
        class_id: u16,
        method_id: u16,
        /// The raw argument bytes (after class and method id), for the reply text.
        args: Bytes,
    },
    /// The property list of a basic content header is malformed.
    #[error("invalid content properties: {0}")]
    InvalidProperties(Box<DecodeError>),
    /// A method argument is invalid in a way other than length (bad UTF-8, unknown
    /// table tag, nesting).
    #[error("invalid argument in method {class_id}.{method_id}: {source}")]
    InvalidField {
        class_id: u16,
        method_id: u16,
        source: Box<DecodeError>,
    },
}

impl DecodeError {
    /// The AMQP reply code RabbitMQ sends for this error (always connection-level).
    pub fn reply_code(&self) -> u16 {
        match self {
            DecodeError::Truncated
            | DecodeError::TrailingBytes
            | DecodeError::InvalidUtf8
            | DecodeError::ShortStrTooLong(_)
            | DecodeError::NestingTooDeep
            | DecodeError::UnknownFrameLayout { .. }
            | DecodeError::MalformedMethod { .. } => reply::FRAME_ERROR,
            DecodeError::UnknownFieldType(_)
            | DecodeError::BadPropertyFlags
            | DecodeError::InvalidProperties(_) => reply::INTERNAL_ERROR,
            DecodeError::UnknownMethod { .. } => reply::COMMAND_INVALID,
            DecodeError::InvalidField { source, .. } => source.reply_code(),
        }
    }

    /// The reply text RabbitMQ sends (see the module docs for the shapes).
    pub fn reply_text(&self) -> String {
        match self {
            DecodeError::Truncated => reply::text(reply::FRAME_ERROR, "truncated value"),
            DecodeError::TrailingBytes => reply::text(reply::FRAME_ERROR, "trailing bytes"),
            DecodeError::InvalidUtf8 => {
                reply::text(reply::FRAME_ERROR, "Malformed UTF-8 in shortstr")
            }
            DecodeError::ShortStrTooLong(n) => {
                reply::text(reply::FRAME_ERROR, &format!("shortstr too long ({n})"))
            }
            DecodeError::NestingTooDeep => {
                reply::text(reply::FRAME_ERROR, "field table nesting too deep")
            }
            // Non-#amqp_error{} crash reasons are reported as the bare constant name.
            DecodeError::UnknownFieldType(_)
            | DecodeError::BadPropertyFlags
            | DecodeError::InvalidProperties(_) => "INTERNAL_ERROR".to_owned(),
            DecodeError::UnknownMethod {
                class_id,
                method_id,
            } => reply::text(
                reply::COMMAND_INVALID,
                &format!("unknown method {{{class_id},{method_id}}}"),
            ),
            DecodeError::UnknownFrameLayout {
                frame_type,
                payload,
            } => reply::text(
                reply::FRAME_ERROR,
                &format!("{}: unknown_frame", frame_snippet(*frame_type, payload)),
            ),
            DecodeError::MalformedMethod { args, .. } => reply::text(
                reply::FRAME_ERROR,
                &format!("cannot decode {}", erl_w_binary(args)),
            ),
            DecodeError::InvalidField { source, .. } => source.reply_text(),
        }
    }

    /// `(class_id, method_id)` RabbitMQ puts into the `connection.close` it sends, if
    /// the error is attributable to a known method (0, 0 otherwise).
    pub fn failing_method(&self) -> Option<(u16, u16)> {
        match self {
            DecodeError::MalformedMethod {
                class_id,
                method_id,
                ..
            }
            | DecodeError::InvalidField {
                class_id,
                method_id,
                ..
            } => Some((*class_id, *method_id)),
            _ => None,
        }
    }

    /// False where RabbitMQ does not send `connection.close` at all but drops the TCP
    /// connection (reader crash): unknown method ids and unknown table tags in method
    /// arguments. (On channel 0 RabbitMQ does reply `541` for the latter; the caller
    /// knows the channel, this codec does not.)
    pub fn rabbit_sends_close(&self) -> bool {
        match self {
            DecodeError::UnknownMethod { .. } => false,
            DecodeError::InvalidField { source, .. } => {
                !matches!(**source, DecodeError::UnknownFieldType(_))
            }
            _ => true,
        }
    }
}

/// `"type T, all octets = <<...>>"` / `"type T, first 16 octets = <<...>>"` as in
/// `rabbit_reader:frame_error/5` (`~p` of at most 16 payload bytes).
pub(crate) fn frame_snippet(frame_type: u8, payload: &[u8]) -> String {
    if payload.len() <= 16 {
        format!("type {frame_type}, all octets = {}", erl_p_binary(payload))
    } else {
        format!(
            "type {frame_type}, first 16 octets = {}",
            erl_p_binary(&payload[..16])
        )
    }
}

/// Erlang `~w` of a binary: `<<1,2,3>>`.
pub(crate) fn erl_w_binary(b: &[u8]) -> String {
    let mut s = String::with_capacity(4 + b.len() * 4);
    s.push_str("<<");
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push_str(">>");
    s
}

/// Erlang `~p` of a binary: printable ones as `<<"text">>`, others like `~w`.
///
/// Approximation: only printable ASCII (plus `\n \r \t`) counts as printable (keeps
/// the text valid UTF-8) and `~p`'s 80-column line wrapping is not reproduced.
pub(crate) fn erl_p_binary(b: &[u8]) -> String {
    let printable = !b.is_empty()
        && b.iter()
            .all(|&c| (0x20..0x7f).contains(&c) || matches!(c, b'\n' | b'\r' | b'\t'));
    if !printable {
        return erl_w_binary(b);
    }
    let mut s = String::from("<<\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            _ => s.push(char::from(c)),
        }
    }
    s.push_str("\">>");
    s
}
