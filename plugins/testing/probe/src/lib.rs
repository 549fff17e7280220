//! `probe`: a test plugin whose behaviour is chosen by its configuration, used
//! by the host's sandbox and hot-swap tests. Not a built-in.
//!
//! `version` sets the version it reports; `mode` is one of
//! `route-to:N` (every message follows binding N), `spin` (never returns),
//! `membomb` (allocates until refused), `trap` (panics), `oversized`
//! (returns far more indices than there are bindings), `bad-index`
//! (returns an index past the last binding).
//!
//! Hostile modes that succeed, but abuse something (each routes to binding
//! 0 when it returns):
//! `kv-flood` (writes 64 fresh 1 KiB keys per message, no TTL),
//! `log-flood` (logs 100 lines per message),
//! `slow:N` (busy-waits N ms per call, e.g. `slow:5`),
//! `poison` (never returns for routing keys starting with `poison`),
//! `grow-then-spin` (asks for more memory than it may have, is refused,
//! then loops: the failure is the loop, not the memory),
//! `by-header` (routes to the binding named by header `to`, an index —
//! combine with `key-only = true` for a plugin that lies about routing only
//! on the key).
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::host::{Level, config, kv, log, now_ms};
use switchyard_plugin::{
    Binding, Body, Exchange, Field, Message, PluginInfo, PluginKind, Router, export_exchange,
};

pub struct Probe;

pub struct ProbeRouter {
    binding_count: u32,
}

impl Exchange for Probe {
    type Router = ProbeRouter;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "probe".into(),
            version: config::get("version").unwrap_or_else(|| "0.0.0".into()),
            kind: PluginKind::Exchange,
            key_only_routing: config::get("key-only").is_some_and(|v| v == "true"),
            description: "test plugin: behaviour chosen by configuration".into(),
        }
    }
}

impl Router for ProbeRouter {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        ProbeRouter {
            binding_count: bindings.len() as u32,
        }
    }

    fn route(&self, message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
        let mode = config::get("mode").unwrap_or_default();
        match mode.as_str() {
            "spin" => {
                let mut counter = 0u64;
                loop {
                    counter = core::hint::black_box(counter.wrapping_add(1));
                }
            }
            "membomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = Vec::with_capacity(1 << 20);
                    block.resize(1 << 20, 1u8);
                    hoard.push(core::hint::black_box(block));
                }
            }
            "trap" => panic!("probe asked to trap"),
            "grow-then-spin" => {
                let mut big: Vec<u8> = Vec::new();
                let refused = big.try_reserve(1 << 30).is_err();
                let mut counter = u64::from(refused);
                loop {
                    counter = core::hint::black_box(counter.wrapping_add(1));
                }
            }
            "oversized" => Ok(alloc::vec![0; 1 << 20]),
            "bad-index" => Ok(alloc::vec![self.binding_count]),
            "kv-flood" => {
                let start = now_ms();
                let block = alloc::vec![7u8; 1024];
                for i in 0..64 {
                    kv::set(
                        &alloc::format!("flood-{start}-{}-{i}", next()),
                        &block,
                        None,
                    );
                }
                Ok(alloc::vec![0])
            }
            "log-flood" => {
                for i in 0..100 {
                    log(Level::Warn, &alloc::format!("probe log flood line {i}"));
                }
                Ok(alloc::vec![0])
            }
            "poison" if message.routing_key.starts_with("poison") => loop {
                core::hint::spin_loop();
            },
            "poison" => Ok(alloc::vec![0]),
            "by-header" => {
                let to = message
                    .headers
                    .iter()
                    .find(|f| f.name == "to")
                    .and_then(|f| switchyard_plugin::value_as_text(&f.value))
                    .and_then(|t| t.parse::<u32>().ok())
                    .unwrap_or(0);
                Ok(alloc::vec![to.min(self.binding_count.saturating_sub(1))])
            }
            other => {
                if let Some(Ok(ms)) = other.strip_prefix("slow:").map(str::parse::<u64>) {
                    let until = now_ms() + ms;
                    while now_ms() < until {
                        core::hint::spin_loop();
                    }
                    return Ok(alloc::vec![0]);
                }
                match other.strip_prefix("route-to:").map(str::parse::<u32>) {
                    Some(Ok(target)) => Ok(alloc::vec![target]),
                    _ => Err(alloc::format!("probe: unknown mode {other:?}")),
                }
            }
        }
    }
}

/// A counter that keeps `kv-flood` keys distinct within one millisecond.
fn next() -> u32 {
    static COUNTER: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    COUNTER.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

export_exchange!(Probe);
