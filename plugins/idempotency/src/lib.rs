//! `idempotency`: suppresses duplicate publishes inside a time window.
//!
//! A message is identified by its message-id and, with `fingerprint = true`
//! in the plugin configuration, a hash of its body as well (so a reused id
//! with a different body is not a duplicate, and messages without an id are
//! still deduplicated by content). The first sighting is remembered in the
//! host key/value store for `window-ms` (default 60000); a second sighting
//! inside the window is a duplicate. Messages with nothing to identify them
//! are accepted, or rejected when `require-id = true`.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use switchyard_plugin::host::{config, kv};
use switchyard_plugin::{
    Body, Filter, Message, PluginInfo, PluginKind, Verdict, export_filter, plugin_info,
};

pub struct Idempotency;

const DEFAULT_WINDOW_MS: u64 = 60_000;

fn flag(name: &str) -> bool {
    config::get(name).is_some_and(|v| v.trim() == "true")
}

/// FNV-1a over the body, read in chunks.
fn fingerprint(body: &Body<'_>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    body.for_each_chunk(|chunk| {
        for &byte in chunk {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    });
    hash
}

/// The key that identifies this message, if anything does.
pub fn identity(message: &Message, body: &Body<'_>, use_fingerprint: bool) -> Option<String> {
    let id = message
        .properties
        .message_id
        .as_deref()
        .filter(|id| !id.is_empty());
    match (id, use_fingerprint) {
        (Some(id), false) => Some(format!("id:{id}")),
        (Some(id), true) => Some(format!("id:{id}#{:016x}", fingerprint(body))),
        (None, true) => Some(format!("body:{:016x}", fingerprint(body))),
        (None, false) => None,
    }
}

impl Filter for Idempotency {
    fn describe() -> PluginInfo {
        plugin_info(
            "idempotency",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Filter,
            false,
            "drop duplicate message ids (and optionally bodies) inside a time window",
        )
    }

    fn check(message: &Message, body: &Body<'_>) -> Verdict {
        let Some(key) = identity(message, body, flag("fingerprint")) else {
            return if flag("require-id") {
                Verdict::Reject("message has no message-id and require-id is set".into())
            } else {
                Verdict::Accept
            };
        };
        let window = config::get("window-ms")
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(DEFAULT_WINDOW_MS);
        if kv::set_if_absent(&key, &[], Some(window)) {
            Verdict::Accept
        } else {
            Verdict::Duplicate
        }
    }
}

export_filter!(Idempotency);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin::{Properties, testing};

    fn message(id: Option<&str>) -> Message {
        Message {
            routing_key: "k".into(),
            headers: alloc::vec::Vec::new(),
            properties: Properties {
                message_id: id.map(String::from),
                ..Properties::default()
            },
            body_size: 0,
        }
    }

    #[test]
    fn second_sighting_inside_the_window_is_a_duplicate() {
        testing::reset();
        testing::set_config("window-ms", "1000");
        let body = Body::from_bytes(b"x");
        assert_eq!(
            Idempotency::check(&message(Some("a")), &body),
            Verdict::Accept
        );
        assert_eq!(
            Idempotency::check(&message(Some("a")), &body),
            Verdict::Duplicate
        );
        testing::advance_ms(1001);
        assert_eq!(
            Idempotency::check(&message(Some("a")), &body),
            Verdict::Accept
        );
    }
}
