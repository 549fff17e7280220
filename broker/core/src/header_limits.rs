//! How much a message's headers may weigh. Exchange and filter plugins see
//! every message's headers in their linear memory; one publisher's
//! messages with megabytes of headers made a shared exchange's plugin fail
//! until it was quarantined, refusing everyone's messages (123 of 143 of
//! another publisher's). Now such a message is refused alone, before any
//! plugin sees it, and plugin calls get their batch in pieces of bounded
//! metadata.

use std::ops::Range;

use switchyard_protocol::{Field, Message, Value, code};

use super::error::BrokerError;
use super::publish::Outcome;

/// Headers of one message (names and values, encoded sizes): AMQP's
/// content header frame, which carries them, is 128 KiB by default.
pub const MAX_HEADER_BYTES: usize = 128 << 10;

/// Metadata handed to one plugin call at most (a single message may
/// exceed it alone): a few MiB within the plugin's 64 MiB of memory.
const PLUGIN_CALL_METADATA_BYTES: usize = 4 << 20;

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Void | Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) | Value::Timestamp(_) => 8,
        Value::Text(text) => text.len() + 4,
        Value::Binary(bytes) => bytes.len() + 4,
        Value::TextList(list) => list.iter().map(|t| t.len() + 4).sum::<usize>() + 4,
    }
}

fn headers_bytes(headers: &[Field]) -> usize {
    headers
        .iter()
        .map(|f| f.name.len() + 4 + value_bytes(&f.value))
        .sum()
}

/// What a plugin call copies of `message`, roughly: routing key,
/// headers and properties (never the body).
fn metadata_bytes(message: &Message) -> usize {
    message.routing_key.len() + headers_bytes(&message.headers) + 256
}

fn check_headers(message: &Message) -> Result<(), BrokerError> {
    let size = headers_bytes(&message.headers);
    if size > MAX_HEADER_BYTES {
        return Err(BrokerError::new(
            code::NOT_ALLOWED,
            format!(
                "the message's headers take {size} bytes; at most {MAX_HEADER_BYTES} are allowed"
            ),
        ));
    }
    Ok(())
}

/// Publishes the messages of `messages` whose headers are within
/// [`MAX_HEADER_BYTES`] with `publish`; the others are refused. One
/// outcome per message, in order.
pub(crate) fn publish_within_limits(
    messages: &[Message],
    publish: impl FnOnce(&[Message]) -> Vec<Outcome>,
) -> Vec<Outcome> {
    let refused: Vec<Option<BrokerError>> =
        messages.iter().map(|m| check_headers(m).err()).collect();
    if refused.iter().all(Option::is_none) {
        return publish(messages);
    }
    let kept: Vec<Message> = (messages.iter().zip(&refused))
        .filter(|(_, refusal)| refusal.is_none())
        .map(|(message, _)| message.clone())
        .collect();
    let mut outcomes = publish(&kept).into_iter();
    refused
        .into_iter()
        .map(|refusal| match refusal {
            Some(e) => Outcome::Refused(e),
            None => outcomes.next().expect("one outcome per message published"),
        })
        .collect()
}

/// `messages` cut into consecutive pieces of at most
/// [`PLUGIN_CALL_METADATA_BYTES`] of metadata each (at least one message
/// a piece); one piece when they are small together, as usual.
pub(crate) fn plugin_call_pieces(messages: &[Message]) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let (mut start, mut weight) = (0, 0);
    for (i, message) in messages.iter().enumerate() {
        let size = metadata_bytes(message);
        if i > start && weight + size > PLUGIN_CALL_METADATA_BYTES {
            pieces.push(start..i);
            (start, weight) = (i, 0);
        }
        weight += size;
    }
    if start < messages.len() || messages.is_empty() {
        pieces.push(start..messages.len());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(bytes: usize) -> Message {
        let mut message = Message::new("k", "body");
        message
            .headers
            .push(Field::new("h", Value::Text("x".repeat(bytes))));
        message
    }

    #[test]
    fn heavy_messages_are_refused_alone_and_in_order() {
        let messages = [
            with_header(10),
            with_header(MAX_HEADER_BYTES),
            with_header(10),
        ];
        let outcomes = publish_within_limits(&messages, |kept| {
            assert_eq!(kept.len(), 2);
            vec![Outcome::Unroutable; kept.len()]
        });
        assert_eq!(outcomes[0], Outcome::Unroutable);
        assert!(matches!(&outcomes[1], Outcome::Refused(e) if e.message.contains("headers take")));
        assert_eq!(outcomes[2], Outcome::Unroutable);
    }

    #[test]
    fn plugin_calls_get_pieces_of_bounded_metadata() {
        let small: Vec<Message> = (0..100).map(|_| with_header(10)).collect();
        assert_eq!(plugin_call_pieces(&small), vec![0..100]);
        let heavy: Vec<Message> = (0..100).map(|_| with_header(100 << 10)).collect();
        let pieces = plugin_call_pieces(&heavy);
        assert!(pieces.len() >= 3, "{pieces:?}");
        assert_eq!(pieces.first().unwrap().start, 0);
        assert_eq!(pieces.last().unwrap().end, 100);
        assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(plugin_call_pieces(&[]), vec![0..0]);
    }
}
