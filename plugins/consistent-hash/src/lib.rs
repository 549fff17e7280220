//! `consistent-hash`: each message goes to at most one binding, chosen on a
//! hash ring where every binding owns as many points as its weight (the
//! binding key, a positive integer).
//!
//! The hash input is the routing key, or the header named by the exchange
//! argument `hash-header`, or the message id when the exchange argument
//! `hash-property` is `message_id`. Messages without that input go nowhere.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::{
    Binding, Body, Exchange, Field, Message, PluginInfo, PluginKind, Router, Value,
    export_exchange, find_field, plugin_info, value_as_text,
};

pub struct ConsistentHash;

enum HashInput {
    RoutingKey,
    Header(String),
    MessageId,
}

pub struct HashRouter {
    /// (point, binding index), sorted by point.
    ring: Vec<(u64, u32)>,
    input: HashInput,
}

/// The most points one binding may own; keeps the ring small.
const MAX_WEIGHT: u32 = 10_000;

/// FNV-1a: stable across platforms and versions, so a message keeps its
/// queue when the broker is upgraded.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Finalise (splitmix64) so that similar inputs spread over the ring.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

fn weight(binding: &Binding) -> Result<u32, String> {
    match binding.key.trim().parse::<u32>() {
        Ok(w) if (1..=MAX_WEIGHT).contains(&w) => Ok(w),
        _ => Err(format!(
            "consistent-hash binding key must be a weight between 1 and {MAX_WEIGHT}, not {:?}",
            binding.key
        )),
    }
}

fn hash_input(arguments: &[Field]) -> HashInput {
    if let Some(Value::Text(header)) = find_field(arguments, "hash-header") {
        return HashInput::Header(header.clone());
    }
    match find_field(arguments, "hash-property") {
        Some(Value::Text(p)) if p == "message_id" || p == "message-id" => HashInput::MessageId,
        _ => HashInput::RoutingKey,
    }
}

impl Exchange for ConsistentHash {
    type Router = HashRouter;

    fn describe() -> PluginInfo {
        plugin_info(
            "consistent-hash",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Exchange,
            false,
            "one binding per message, chosen on a weighted hash ring",
        )
    }

    fn validate_binding(binding: &Binding, exchange_arguments: &[Field]) -> Result<(), String> {
        weight(binding)?;
        match find_field(exchange_arguments, "hash-property") {
            None => Ok(()),
            Some(Value::Text(p)) if p == "message_id" || p == "message-id" => Ok(()),
            Some(other) => Err(format!(
                "hash-property supports only message_id, not {other:?}"
            )),
        }
    }
}

impl Router for HashRouter {
    fn new(bindings: Vec<Binding>, exchange_arguments: Vec<Field>) -> Self {
        let mut ring = Vec::new();
        for (binding, index) in bindings.iter().zip(0u32..) {
            let points = weight(binding).unwrap_or(0);
            for point in 0..points {
                let seed = format!("{}\u{0}{}\u{0}{}", binding.destination, index, point);
                ring.push((fnv1a(seed.as_bytes()), index));
            }
        }
        ring.sort_unstable();
        HashRouter {
            ring,
            input: hash_input(&exchange_arguments),
        }
    }

    fn route(&self, message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
        let input = match &self.input {
            HashInput::RoutingKey => Some(message.routing_key.clone()),
            HashInput::Header(name) => find_field(&message.headers, name).and_then(value_as_text),
            HashInput::MessageId => message.properties.message_id.clone(),
        };
        let (Some(input), false) = (input, self.ring.is_empty()) else {
            return Ok(Vec::new());
        };
        let point = fnv1a(input.as_bytes());
        let slot = self.ring.partition_point(|&(p, _)| p < point);
        let (_, index) = self.ring[slot % self.ring.len()];
        Ok(alloc::vec![index])
    }
}

export_exchange!(ConsistentHash);
