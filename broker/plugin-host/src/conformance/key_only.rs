//! Holds an exchange plugin to its `key-only-routing` claim: messages with
//! the same routing key but different headers, properties and bodies must
//! be routed alike. The host caches decisions by key for such plugins, so a
//! false claim would misroute in production (the broker also samples cache
//! hits and stops caching on a mismatch, but only after the first ones).

use std::sync::Arc;

use bytes::Bytes;

use super::super::bindings::{Field, Message, Value};
use super::super::exchange::{ExchangeRouter, RouteResult};
use super::super::registry::PluginSlot;
use super::Cases;
use super::exchange::binding;
use crate::PluginError;

/// The same routing key dressed differently: what a plugin that really
/// routes on the key alone cannot tell apart.
fn variants(key: &str) -> Vec<(String, Message, Bytes)> {
    let header = |name: &str, value: Value| {
        let mut message = Message::with_key(key);
        message.headers.push(Field::new(name, value));
        message
    };
    let text = |s: &str| Value::Text(s.into());
    let mut with_id = Message::with_key(key);
    with_id.properties.message_id = Some("m-1".into());
    with_id.properties.priority = Some(9);
    [
        ("nothing else", Message::with_key(key), Bytes::new()),
        ("header to=0", header("to", text("0")), Bytes::new()),
        ("header to=1", header("to", text("1")), Bytes::new()),
        ("header to=3", header("to", Value::Int(3)), Bytes::new()),
        (
            "header amount=5",
            header("amount", Value::Int(5)),
            Bytes::new(),
        ),
        (
            "header amount=5000",
            header("amount", Value::Int(5000)),
            Bytes::new(),
        ),
        (
            "header x-match=any",
            header("x-match", text("any")),
            Bytes::new(),
        ),
        ("a message id and priority", with_id, Bytes::new()),
        (
            "a 4 KiB body",
            Message::with_key(key),
            Bytes::from(vec![b'x'; 4096]),
        ),
    ]
    .into_iter()
    .map(|(label, mut message, body)| {
        message.body_size = body.len() as u64;
        (label.to_string(), message, body)
    })
    .collect()
}

/// Adds the case "key-only routing claim holds" for a plugin that makes the
/// claim; nothing for one that does not.
pub(super) fn check(slot: Arc<PluginSlot>, cases: &mut Cases) -> Result<(), PluginError> {
    if !slot.active().info().key_only_routing {
        return Ok(());
    }
    let router = ExchangeRouter::new(slot, Vec::new())?.without_decision_cache();
    let bindings: Vec<_> = ["a", "k", "#", "", "a.*"]
        .iter()
        .enumerate()
        .map(|(i, key)| binding(&format!("q{i}"), key))
        .filter(|b| router.validate_binding(b).is_ok())
        .collect();
    router.set_bindings(bindings);
    cases.check("key-only routing claim holds", compare(&router));
    Ok(())
}

fn compare(router: &ExchangeRouter) -> Result<(), String> {
    for key in ["k", "a", "a.b", ""] {
        let (labels, (messages, bodies)): (Vec<String>, (Vec<Message>, Vec<Bytes>)) = variants(key)
            .into_iter()
            .map(|(label, message, body)| (label, (message, body)))
            .unzip();
        let routed = router
            .route_batch(&messages, &bodies)
            .map_err(|e| e.to_string())?;
        let first: &RouteResult = &routed.results[0];
        if let Some((label, other)) = labels
            .iter()
            .zip(&routed.results)
            .find(|(_, result)| *result != first)
        {
            return Err(format!(
                "the plugin declares key-only-routing, but key {key:?} went to {} with {} \
                 and to {} with {label}; declare key-only-routing = false",
                show(first),
                labels[0],
                show(other)
            ));
        }
    }
    Ok(())
}

fn show(result: &RouteResult) -> String {
    match result {
        Ok(targets) => format!("bindings {:?}", &targets[..]),
        Err(reason) => format!("a refusal ({reason})"),
    }
}
