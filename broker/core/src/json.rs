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

/// A row (or a header table) as one JSON object.
pub fn row_json(row: &[Field]) -> serde_json::Value {
    serde_json::Value::Object(
        row.iter()
            .map(|f| (f.name.clone(), value_json(&f.value)))
            .collect(),
    )
}
