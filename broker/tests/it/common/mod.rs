//! Shared set-up for the plugin host tests: a registry in a temporary sled
//! database with the built-ins installed, and the test-only probe plugin.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use switchyard::plugins::{
    Binding, ExchangeRouter, LoadOptions, PluginEngine, PluginRegistry, PluginVersion,
    SandboxLimits,
};

pub const PROBE: &[u8] = include_bytes!("../../../../plugins/dist/testing/probe.wasm");

pub fn registry_with(limits: SandboxLimits) -> PluginRegistry {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let registry = PluginRegistry::open(PluginEngine::new(limits, None).unwrap(), db).unwrap();
    assert!(registry.install_builtins().is_empty());
    registry
}

pub fn registry() -> PluginRegistry {
    registry_with(SandboxLimits::default())
}

/// Loads the probe plugin as `name` with `version` and `mode`.
pub fn load_probe(
    registry: &PluginRegistry,
    name: &str,
    version: &str,
    mode: &str,
    activate: bool,
) -> Arc<PluginVersion> {
    registry
        .load(
            PROBE,
            LoadOptions {
                name: Some(name.into()),
                config: BTreeMap::from([
                    ("version".to_string(), version.to_string()),
                    ("mode".to_string(), mode.to_string()),
                ]),
                activate,
            },
        )
        .unwrap()
}

pub fn bindings(count: usize) -> Vec<Binding> {
    (0..count)
        .map(|i| Binding {
            destination: format!("q{i}"),
            key: format!("k{i}"),
            arguments: Vec::new(),
        })
        .collect()
}

/// An exchange of plugin `name` with `count` bindings.
pub fn exchange(registry: &PluginRegistry, name: &str, count: usize) -> ExchangeRouter {
    let router = ExchangeRouter::new(registry.get(name).unwrap(), Vec::new()).unwrap();
    router.set_bindings(bindings(count));
    router
}
