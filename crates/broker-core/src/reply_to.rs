//! Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to`): an RPC client
//! consumes from the pseudo-queue in no-ack mode and publishes requests with
//! `reply_to = amq.rabbitmq.reply-to`; the broker rewrites that to a
//! routable name for this channel, and replies published to the default
//! exchange with that routing key go straight to the client's consumer,
//! without any queue.

use amqp_codec::{BasicProperties, Method, ShortStr};
use bytes::Bytes;

use crate::broker::Broker;
use crate::delivery::{write_content, ContentMethod};
use crate::enqueue::Incoming;
use crate::error::AmqpError;
use crate::ConnId;

pub(crate) const REPLY_QUEUE: &str = "amq.rabbitmq.reply-to";
const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

impl Broker {
    /// basic.consume on the pseudo-queue.
    pub(crate) fn reply_to_consume(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: ShortStr,
        no_ack: bool,
        no_wait: bool,
    ) -> Result<(), AmqpError> {
        if !no_ack {
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        let secret = self.random();
        let c = self.sessions.channel_mut(conn, ch)?;
        if c.reply_consumer.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        c.reply_consumer = Some((tag.clone(), secret));
        if !no_wait {
            self.sessions.send(
                conn,
                ch,
                &Method::BasicConsumeOk(amqp_codec::BasicConsumeOk { consumer_tag: tag }),
            );
        }
        Ok(())
    }

    /// Rewrites `reply_to = amq.rabbitmq.reply-to` in published properties
    /// to this channel's routable name: the new property bytes, or None
    /// when the properties pass untouched.
    pub(crate) fn reply_to_rewrite(
        &mut self,
        conn: ConnId,
        ch: u16,
        raw: &[u8],
    ) -> Result<Option<Bytes>, AmqpError> {
        // Cheap pre-checks: the reply-to flag is set and the bytes can
        // contain the name; only then decode.
        let has_reply_to =
            amqp_codec::property_flags(raw).is_some_and(|f| f & amqp_codec::FLAG_REPLY_TO != 0);
        if !has_reply_to || !contains(raw, REPLY_QUEUE.as_bytes()) {
            return Ok(None);
        }
        let Ok(mut props) = BasicProperties::decode(&Bytes::copy_from_slice(raw)) else {
            return Ok(None);
        };
        if props.reply_to.as_deref() != Some(REPLY_QUEUE) {
            return Ok(None);
        }
        let c = self.sessions.channel_mut(conn, ch)?;
        let Some((_, secret)) = c.reply_consumer.as_ref() else {
            return Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            ));
        };
        props.reply_to = Some(ShortStr::from(format!(
            "{REPLY_PREFIX}{conn}.{ch}.{secret:016x}"
        )));
        Ok(Some(props.to_bytes()))
    }

    /// A publish to the default exchange addressed to a reply name: delivers
    /// it to the waiting consumer. Returns false if nobody waits (unroutable).
    pub(crate) fn reply_to_deliver(&mut self, m: &Incoming<'_>) -> bool {
        let Some(rest) = m.routing_key.strip_prefix(REPLY_PREFIX) else {
            return false;
        };
        let mut parts = rest.split('.');
        let (Some(c), Some(h), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(conn), Ok(ch), Ok(secret)) = (
            c.parse::<ConnId>(),
            h.parse::<u16>(),
            u64::from_str_radix(s, 16),
        ) else {
            return false;
        };
        let Some(c) = self.sessions.conns.get_mut(&conn) else {
            return false;
        };
        if c.closing {
            return false;
        }
        let frame_max = c.info.frame_max;
        let Some(chan) = c.channels.get_mut(&ch) else {
            return false;
        };
        let Some((tag, expected)) = chan.reply_consumer.clone() else {
            return false;
        };
        if expected != secret {
            return false;
        }
        let delivery_tag = chan.next_delivery_tag;
        chan.next_delivery_tag += 1;
        let method = ContentMethod::Deliver {
            consumer_tag: &tag,
            delivery_tag,
            redelivered: false,
        };
        write_content(&mut c.out, ch, method, m, frame_max);
        self.sessions.dirty.push(conn);
        true
    }
}

pub(crate) fn is_reply_name(routing_key: &str) -> bool {
    routing_key.starts_with(REPLY_PREFIX)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
