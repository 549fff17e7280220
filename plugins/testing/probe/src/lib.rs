//! `probe`: a test plugin whose behaviour is chosen by its configuration, used
//! by the host's sandbox and hot-swap tests. Not a built-in.
//!
//! `version` sets the version it reports; `mode` is one of
//! `route-to:N` (every message follows binding N), `spin` (never returns),
//! `membomb` (allocates until refused), `trap` (panics), `oversized`
//! (returns far more indices than there are bindings), `bad-index`
//! (returns an index past the last binding).
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::host::config;
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
            key_only_routing: false,
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

    fn route(&self, _message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
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
            "oversized" => Ok(alloc::vec![0; 1 << 20]),
            "bad-index" => Ok(alloc::vec![self.binding_count]),
            other => match other.strip_prefix("route-to:").map(str::parse::<u32>) {
                Some(Ok(target)) => Ok(alloc::vec![target]),
                _ => Err(alloc::format!("probe: unknown mode {other:?}")),
            },
        }
    }
}

export_exchange!(Probe);
