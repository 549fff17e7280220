//! amount-range: a message follows every binding whose `min`/`max`
//! arguments (inclusive, either optional) contain its numeric `amount`
//! header. See ../README.md.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/exchange-plugin" });

use exports::switchyard::plugin::exchange::{Guest as Exchange, GuestRouter};
use switchyard::plugin::types::{Binding, Bodies, Field, Message, PluginKind, Value};

struct Plugin;

/// One binding's range.
struct Range {
    min: Option<f64>,
    max: Option<f64>,
}

struct Router {
    ranges: Vec<Range>,
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        Value::Text(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn argument(fields: &[Field], name: &str) -> Result<Option<f64>, String> {
    match fields.iter().find(|f| f.name == name) {
        None => Ok(None),
        Some(field) => number(&field.value)
            .map(Some)
            .ok_or_else(|| format!("binding argument {name} must be a number")),
    }
}

fn range(binding: &Binding) -> Result<Range, String> {
    let min = argument(&binding.arguments, "min")?;
    let max = argument(&binding.arguments, "max")?;
    match (min, max) {
        (None, None) => Err("a binding needs a numeric min and/or max argument".into()),
        (Some(min), Some(max)) if min > max => Err(format!("min {min} is greater than max {max}")),
        _ => Ok(Range { min, max }),
    }
}

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "amount-range".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Exchange,
            key_only_routing: false,
            description: "routes by the numeric amount header into min/max ranges".into(),
        }
    }
}

impl Exchange for Plugin {
    type Router = Router;

    fn validate_binding(binding: Binding, _exchange_arguments: Vec<Field>) -> Result<(), String> {
        range(&binding).map(drop)
    }
}

impl GuestRouter for Router {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        // Bindings were validated when added; one that no longer parses matches nothing.
        let ranges = bindings
            .iter()
            .map(|b| range(b).unwrap_or(Range { min: Some(f64::INFINITY), max: None }))
            .collect();
        Router { ranges }
    }

    fn route(&self, message: Message, _bodies: &Bodies) -> Result<Vec<u32>, String> {
        let amount = message
            .headers
            .iter()
            .find(|f| f.name == "amount")
            .and_then(|f| number(&f.value))
            .ok_or("the message has no numeric amount header")?;
        Ok(self
            .ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.min.is_none_or(|min| amount >= min) && r.max.is_none_or(|max| amount <= max))
            .map(|(index, _)| index as u32)
            .collect())
    }

    fn route_batch(&self, messages: Vec<Message>, bodies: &Bodies) -> Vec<Result<Vec<u32>, String>> {
        messages.into_iter().map(|m| self.route(m, bodies)).collect()
    }
}

export!(Plugin);
