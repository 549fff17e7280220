//! Small helpers over headers and arguments.

use alloc::string::String;

use crate::{Field, Value};

/// Builds a field.
pub fn field(name: &str, value: Value) -> Field {
    Field {
        name: name.into(),
        value,
    }
}

/// The first field with this name (names compare exactly, as in AMQP).
pub fn find_field<'a>(fields: &'a [Field], name: &str) -> Option<&'a Value> {
    fields.iter().find(|f| f.name == name).map(|f| &f.value)
}

/// A value rendered as text, for values that have a natural text form
/// (text, integers, booleans, timestamps); `None` for the others.
pub fn value_as_text(value: &Value) -> Option<String> {
    use alloc::string::ToString;
    match value {
        Value::Text(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Timestamp(t) => Some(t.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

// The type is generated, so it cannot carry a derive of its own.
#[allow(clippy::derivable_impls)]
impl Default for crate::Properties {
    fn default() -> Self {
        crate::Properties {
            message_id: None,
            correlation_id: None,
            reply_to: None,
            content_type: None,
            content_encoding: None,
            priority: None,
            timestamp: None,
            expiration: None,
            kind: None,
            app_id: None,
            user_id: None,
        }
    }
}
