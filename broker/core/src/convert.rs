//! Conversions between the wire's message types, the plugins' WIT types and
//! the attributes blob the store keeps beside each body.
//!
//! Stored attributes: exchange (u16-length string) · properties · headers,
//! in the wire encoding (docs/PROTOCOL.md), so a delivery re-emits them
//! without reinterpretation.

use bytes::{Bytes, BytesMut};
use switchyard_protocol::wire::{Reader, Wire, Writer};
use switchyard_protocol::{Field, Message, Properties, Value};

use switchyard_plugin_host as plugins;
use switchyard_storage::{FLAG_PERSISTENT, StoredMessage};

/// Arguments as a user wrote them: `name=value,…` (empty for none).
pub fn arguments_text(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| match f.value.as_text() {
            Some(text) => format!("{}={text}", f.name),
            None => format!("{}={:?}", f.name, f.value),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// [`arguments_text`] for a sentence: `none` when there are none.
pub fn describe_arguments(fields: &[Field]) -> String {
    match arguments_text(fields) {
        text if text.is_empty() => "none".into(),
        text => text,
    }
}

pub fn value_to_plugin(value: &Value) -> plugins::Value {
    match value {
        Value::Void => plugins::Value::Void,
        Value::Bool(b) => plugins::Value::Boolean(*b),
        Value::Int(i) => plugins::Value::Int(*i),
        Value::Float(f) => plugins::Value::Float(*f),
        Value::Text(s) => plugins::Value::Text(s.clone()),
        Value::Binary(b) => plugins::Value::Binary(b.to_vec()),
        Value::Timestamp(t) => plugins::Value::Timestamp(*t),
        Value::TextList(l) => plugins::Value::TextList(l.clone()),
    }
}

pub fn fields_to_plugin(fields: &[Field]) -> Vec<plugins::Field> {
    fields
        .iter()
        .map(|f| plugins::Field {
            name: f.name.clone(),
            value: value_to_plugin(&f.value),
        })
        .collect()
}

fn properties_to_plugin(p: &Properties) -> plugins::Properties {
    plugins::Properties {
        message_id: p.message_id.clone(),
        correlation_id: p.correlation_id.clone(),
        reply_to: p.reply_to.clone(),
        content_type: p.content_type.clone(),
        content_encoding: p.content_encoding.clone(),
        priority: p.priority,
        timestamp: p.timestamp,
        expiration: p.expiration,
        kind: p.kind.clone(),
        app_id: p.app_id.clone(),
        user_id: p.user_id.clone(),
    }
}

/// What an exchange plugin sees of a message (no body copy).
pub fn message_to_plugin(message: &Message) -> plugins::Message {
    plugins::Message {
        routing_key: message.routing_key.clone(),
        headers: fields_to_plugin(&message.headers),
        properties: properties_to_plugin(&message.properties),
        body_size: message.body.len() as u64,
    }
}

/// The record to append for a message published to `exchange` at `now_ms`.
pub fn to_stored(exchange: &str, message: &Message, now_ms: u64) -> StoredMessage {
    let mut attributes = BytesMut::with_capacity(64);
    let mut w = Writer {
        buf: &mut attributes,
    };
    w.short_str(exchange);
    message.properties.put(&mut w);
    message.headers.put(&mut w);
    StoredMessage {
        flags: if message.is_persistent() {
            FLAG_PERSISTENT
        } else {
            0
        },
        publish_ms: now_ms,
        expiry_ms: message
            .properties
            .expiration
            .map_or(0, |ttl| now_ms.saturating_add(ttl.max(1))),
        deliver_after_ms: 0,
        routing_key: Bytes::copy_from_slice(message.routing_key.as_bytes()),
        attributes: attributes.freeze(),
        body: message.body.clone(),
    }
}

/// The exchange and message back from a record.
pub fn from_stored(stored: &StoredMessage) -> Result<(String, Message), String> {
    let mut r = Reader::new(stored.attributes.clone());
    let decode = |r: &mut Reader| -> Result<_, switchyard_protocol::DecodeError> {
        Ok((r.short_str()?, Properties::get(r)?, Vec::<Field>::get(r)?))
    };
    let (exchange, properties, headers) =
        decode(&mut r).map_err(|e| format!("stored message attributes: {e}"))?;
    let routing_key = String::from_utf8(stored.routing_key.to_vec())
        .map_err(|_| "stored routing key is not UTF-8".to_string())?;
    Ok((
        exchange,
        Message {
            routing_key,
            flags: if stored.is_persistent() {
                switchyard_protocol::PERSISTENT
            } else {
                0
            },
            properties,
            headers,
            body: stored.body.clone(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_keep_exchange_properties_and_headers() {
        let mut message = Message::new("a.b", "body")
            .persistent()
            .with_header("n", Value::Int(3));
        message.properties.message_id = Some("m-1".into());
        message.properties.expiration = Some(500);
        let stored = to_stored("orders", &message, 1_000);
        assert_eq!(stored.expiry_ms, 1_500);
        let (exchange, back) = from_stored(&stored).unwrap();
        assert_eq!(exchange, "orders");
        assert_eq!(back, message);
    }
}
