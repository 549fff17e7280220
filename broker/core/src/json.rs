//! Listing rows and field values as JSON, for every front door that
//! speaks it (the CLI's `--json`, the HTTP API): numbers stay numbers,
//! binary values are `0x…` hex.

use switchyard_protocol::{Field, Value};

pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Void => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Timestamp(t) => (*t).into(),
        Value::TextList(items) => items.clone().into(),
        Value::Binary(b) => format!("0x{}", hex::encode(b)).into(),
        other => other.as_text().unwrap_or_default().into(),
    }
}

/// A JSON object as a field table (declare and binding arguments): text,
/// booleans, integers, other numbers as floats, lists of text, null.
pub fn fields_from_json(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Field>, super::BrokerError> {
    object
        .iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::Null => Value::Void,
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::String(s) => Value::Text(s.clone()),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => Value::Float(n.as_f64().unwrap_or_default()),
                },
                serde_json::Value::Array(items) => Value::TextList(
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            super::BrokerError::invalid_argument(format!(
                                "argument '{name}': only lists of text are supported"
                            ))
                        })?,
                ),
                serde_json::Value::Object(_) => {
                    return Err(super::BrokerError::invalid_argument(format!(
                        "argument '{name}': an object is not an argument value"
                    )));
                }
            };
            Ok(Field::new(name.clone(), value))
        })
        .collect()
}

/// A row (or a header table) as one JSON object.
pub fn row_json(row: &[Field]) -> serde_json::Value {
    serde_json::Value::Object(
        row.iter()
            .map(|f| (f.name.clone(), value_json(&f.value)))
            .collect(),
    )
}
