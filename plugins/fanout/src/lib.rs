//! `fanout`: a message follows every binding, whatever its routing key.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::{
    Binding, Body, Exchange, Field, Message, PluginInfo, PluginKind, Router, export_exchange,
    plugin_info,
};

pub struct Fanout;

pub struct FanoutRouter {
    all: Vec<u32>,
}

impl Exchange for Fanout {
    type Router = FanoutRouter;

    fn describe() -> PluginInfo {
        plugin_info(
            "fanout",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Exchange,
            true,
            "every binding receives every message",
        )
    }
}

impl Router for FanoutRouter {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        FanoutRouter {
            all: (0..bindings.len() as u32).collect(),
        }
    }

    fn route(&self, _message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
        Ok(self.all.clone())
    }
}

export_exchange!(Fanout);
