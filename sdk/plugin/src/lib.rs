//! Write Switchyard plugins in Rust.
//!
//! A plugin implements one trait ([`Exchange`], [`DeadLetterPolicy`],
//! [`Filter`] or [`SetRouter`]) and calls the matching export macro once.
//! The crate is `no_std` + `alloc` and imports nothing from WASI, so plugins
//! compile to small `wasm32-unknown-unknown` modules that become components
//! with no ambient authority.
//!
//! Enable the cargo feature of the world your plugin implements
//! (`exchange`, `dead-letter`, `filter` or `set-router`) — exactly one: each
//! feature embeds its world's type information in the compiled module.
//!
//! The same code runs as an ordinary Rust library on the host target, where
//! the host capabilities ([`host`]) are served by an in-memory double
//! configured through [`testing`], so plugins are unit-tested with
//! `cargo test`.

#![no_std]

extern crate alloc;
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

// Lets the generated bindings name this crate the same way from inside it
// and from the plugin crates that expand its export macros.
extern crate self as switchyard_plugin;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[doc(hidden)]
pub mod bindings;
mod body;
pub mod host;
mod runtime;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod values;

#[cfg(feature = "dead-letter")]
pub mod dead_letter;
#[cfg(feature = "exchange")]
pub mod exchange;
#[cfg(feature = "filter")]
pub mod filter;
#[cfg(feature = "set-router")]
pub mod set_router;

pub use bindings::base::switchyard::plugin::types::{
    Binding, DeathReason, DeathRecord, Field, Message, PluginInfo, PluginKind, Properties, Value,
};
pub use body::Body;
pub use values::{field, find_field, value_as_text};

#[cfg(feature = "dead-letter")]
pub use dead_letter::{Action, BatchAction, BatchDeath, DeadLetterPolicy, Death};
#[cfg(feature = "exchange")]
pub use exchange::{Exchange, Router};
#[cfg(feature = "filter")]
pub use filter::{Filter, Verdict};
#[cfg(feature = "set-router")]
pub use set_router::{
    CENTER_CELL, Decision, Pin, SLOTS, SetRouter, SetTable, SlotRange, cell_of, slot_of,
};

/// Convenience for `describe()` implementations.
pub fn plugin_info(
    name: &str,
    version: &str,
    kind: PluginKind,
    key_only_routing: bool,
    description: &str,
) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: version.into(),
        kind,
        key_only_routing,
        description: description.into(),
    }
}
