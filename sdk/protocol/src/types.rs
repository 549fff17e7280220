//! Message-level types carried by frames: typed header values, standard
//! properties, and a message (routing key, flags, properties, headers, body).
//! They mirror the WIT types plugins see (`wit/types.wit`).

use bytes::Bytes;

use crate::error::DecodeError;
use crate::wire::{Reader, Wire, Writer};

/// A typed header value, binding argument or setting.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Void,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Binary(Bytes),
    /// Milliseconds since the Unix epoch.
    Timestamp(u64),
    TextList(Vec<String>),
}

impl Value {
    /// The value as text, for arguments given on a command line.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Timestamp(t) => Some(t.to_string()),
            _ => None,
        }
    }

    /// Parses command-line text: integers and booleans become typed values
    /// when they read back as written (`02134`, `+5` and `1e3` stay text: a
    /// zip code must not lose its zero).
    pub fn parse_text(text: &str) -> Value {
        if let Ok(i) = text.parse::<i64>()
            && i.to_string() == text
        {
            Value::Int(i)
        } else if let Ok(b) = text.parse::<bool>() {
            Value::Bool(b)
        } else {
            Value::Text(text.to_string())
        }
    }
}

impl Wire for Value {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            Value::Void => w.u8(0),
            Value::Bool(b) => {
                w.u8(1);
                w.bool(*b)
            }
            Value::Int(i) => {
                w.u8(2);
                w.u64(*i as u64)
            }
            Value::Float(f) => {
                w.u8(3);
                w.u64(f.to_bits())
            }
            Value::Text(s) => {
                w.u8(4);
                w.long_str(s)
            }
            Value::Binary(b) => {
                w.u8(5);
                w.long_bytes(b)
            }
            Value::Timestamp(t) => {
                w.u8(6);
                w.u64(*t)
            }
            Value::TextList(items) => {
                w.u8(7);
                w.u32(items.len() as u32);
                for item in items {
                    w.long_str(item);
                }
            }
        }
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Value::Void,
            1 => Value::Bool(r.bool()?),
            2 => Value::Int(r.u64()? as i64),
            3 => Value::Float(f64::from_bits(r.u64()?)),
            4 => Value::Text(r.long_str()?),
            5 => Value::Binary(r.long_bytes()?),
            6 => Value::Timestamp(r.u64()?),
            7 => {
                let count = r.count(true, 4)?;
                Value::TextList((0..count).map(|_| r.long_str()).collect::<Result<_, _>>()?)
            }
            tag => return Err(DecodeError::Invalid(format!("value type tag {tag}"))),
        })
    }
}

/// One named value.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub value: Value,
}

impl Field {
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        Field {
            name: name.into(),
            value,
        }
    }
}

impl Wire for Field {
    fn put(&self, w: &mut Writer<'_>) {
        w.short_str(&self.name);
        self.value.put(w);
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Field {
            name: r.short_str()?,
            value: Value::get(r)?,
        })
    }
}

/// Looks up a field by name.
pub fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a Value> {
    fields.iter().find(|f| f.name == name).map(|f| &f.value)
}

/// Standard message properties (AMQP's basic properties).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub priority: Option<u8>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// Time to live in milliseconds.
    pub expiration: Option<u64>,
    pub kind: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
}

/// Bits of the presence mask, in encoding order.
const PROPERTY_BITS: u16 = 11;

impl Wire for Properties {
    fn put(&self, w: &mut Writer<'_>) {
        let strings = [
            &self.message_id,
            &self.correlation_id,
            &self.reply_to,
            &self.content_type,
            &self.content_encoding,
        ];
        let tail = [&self.kind, &self.app_id, &self.user_id];
        let mut mask = 0u16;
        for (bit, present) in strings
            .iter()
            .map(|s| s.is_some())
            .chain([
                self.priority.is_some(),
                self.timestamp.is_some(),
                self.expiration.is_some(),
            ])
            .chain(tail.iter().map(|s| s.is_some()))
            .enumerate()
        {
            mask |= (present as u16) << bit;
        }
        w.u16(mask);
        for s in strings.into_iter().flatten() {
            w.short_str(s);
        }
        if let Some(p) = self.priority {
            w.u8(p);
        }
        for v in [self.timestamp, self.expiration].into_iter().flatten() {
            w.u64(v);
        }
        for s in tail.into_iter().flatten() {
            w.short_str(s);
        }
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let mask = r.u16()?;
        if mask >> PROPERTY_BITS != 0 {
            return Err(DecodeError::Invalid(format!(
                "unknown property bits in mask {mask:#06x}"
            )));
        }
        let has = |bit: u16| mask & (1 << bit) != 0;
        let string = |bit: u16, r: &mut Reader| -> Result<Option<String>, DecodeError> {
            has(bit).then(|| r.short_str()).transpose()
        };
        Ok(Properties {
            message_id: string(0, r)?,
            correlation_id: string(1, r)?,
            reply_to: string(2, r)?,
            content_type: string(3, r)?,
            content_encoding: string(4, r)?,
            priority: has(5).then(|| r.u8()).transpose()?,
            timestamp: has(6).then(|| r.u64()).transpose()?,
            expiration: has(7).then(|| r.u64()).transpose()?,
            kind: string(8, r)?,
            app_id: string(9, r)?,
            user_id: string(10, r)?,
        })
    }
}

/// Publish flag: store the message durably (survives a restart in a durable queue).
pub const PERSISTENT: u8 = 1;
/// Publish flag: return the message if no queue receives it.
pub const MANDATORY: u8 = 2;

/// A message as published and delivered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub routing_key: String,
    /// [`PERSISTENT`] | [`MANDATORY`].
    pub flags: u8,
    pub properties: Properties,
    pub headers: Vec<Field>,
    pub body: Bytes,
}

/// Header: deliver this many milliseconds after publishing.
pub const DELAY_HEADER: &str = "x-delay";
/// Header: deliver at this time (milliseconds since the Unix epoch).
pub const DELIVER_AT_HEADER: &str = "x-deliver-at";
/// Header: the ordering key — an `ordered` exchange keeps every key's
/// messages on one partition, in publish order.
pub const ORDERING_KEY_HEADER: &str = "x-ordering-key";

impl Message {
    pub fn new(routing_key: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            routing_key: routing_key.into(),
            body: body.into(),
            ..Message::default()
        }
    }

    pub fn persistent(mut self) -> Self {
        self.flags |= PERSISTENT;
        self
    }

    pub fn mandatory(mut self) -> Self {
        self.flags |= MANDATORY;
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: Value) -> Self {
        self.headers.push(Field::new(name, value));
        self
    }

    /// Delivered `delay` after the broker receives it (header
    /// [`DELAY_HEADER`]): stored and confirmed at once, visible in its
    /// queues when due.
    pub fn delayed(self, delay: std::time::Duration) -> Self {
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.with_header(DELAY_HEADER, Value::Int(ms))
    }

    /// The ordering key (header [`ORDERING_KEY_HEADER`]): an `ordered`
    /// exchange keeps every key's messages on one partition, in order.
    pub fn ordering_key(self, key: impl Into<String>) -> Self {
        self.with_header(ORDERING_KEY_HEADER, Value::Text(key.into()))
    }

    /// Delivered at `at` (header [`DELIVER_AT_HEADER`], milliseconds since
    /// the Unix epoch).
    pub fn deliver_at(self, at: std::time::SystemTime) -> Self {
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.with_header(DELIVER_AT_HEADER, Value::Int(ms))
    }

    pub fn is_persistent(&self) -> bool {
        self.flags & PERSISTENT != 0
    }

    pub fn is_mandatory(&self) -> bool {
        self.flags & MANDATORY != 0
    }
}

impl Wire for Message {
    fn put(&self, w: &mut Writer<'_>) {
        w.short_str(&self.routing_key);
        w.u8(self.flags);
        self.properties.put(w);
        self.headers.put(w);
        w.long_bytes(&self.body);
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let routing_key = r.short_str()?;
        let flags = r.u8()?;
        if flags & !(PERSISTENT | MANDATORY) != 0 {
            return Err(DecodeError::Invalid(format!(
                "unknown message flags {flags:#04x}"
            )));
        }
        Ok(Message {
            routing_key,
            flags,
            properties: Properties::get(r)?,
            headers: Vec::get(r)?,
            body: r.long_bytes()?,
        })
    }
}

#[cfg(test)]
mod parse_text_tests {
    use super::Value;

    #[test]
    fn only_canonical_numbers_become_integers() {
        assert_eq!(Value::parse_text("2134"), Value::Int(2134));
        assert_eq!(Value::parse_text("-7"), Value::Int(-7));
        assert_eq!(Value::parse_text("02134"), Value::Text("02134".into()));
        assert_eq!(Value::parse_text("+5"), Value::Text("+5".into()));
        assert_eq!(Value::parse_text("true"), Value::Bool(true));
    }
}
