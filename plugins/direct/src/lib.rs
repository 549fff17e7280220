//! `direct`: a message follows every binding whose key equals its routing key.
#![no_std]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::{
    Binding, Body, Exchange, Field, Message, PluginInfo, PluginKind, Router, export_exchange,
    plugin_info,
};

pub struct Direct;

pub struct DirectRouter {
    by_key: BTreeMap<String, Vec<u32>>,
}

impl Exchange for Direct {
    type Router = DirectRouter;

    fn describe() -> PluginInfo {
        plugin_info(
            "direct",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Exchange,
            true,
            "binding key equals routing key",
        )
    }
}

impl Router for DirectRouter {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (binding, index) in bindings.into_iter().zip(0u32..) {
            by_key.entry(binding.key).or_default().push(index);
        }
        DirectRouter { by_key }
    }

    fn route(&self, message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
        Ok(self
            .by_key
            .get(&message.routing_key)
            .cloned()
            .unwrap_or_default())
    }
}

export_exchange!(Direct);
