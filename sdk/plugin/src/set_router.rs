//! SET (cell) routing: which cell serves a message.
//!
//! A router implements [`SetRouter::route`] (the 0.1.0 call: the broker
//! names its cell, the router keeps its own table) and may override
//! [`SetRouter::route_batch`], which the broker calls once per publish
//! batch with its SET table in force ([`SetTable`], [`cell_of`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::bindings::base::switchyard::plugin::types::Bodies;
use crate::bindings::set_router as wit;
use crate::{Body, Message, PluginInfo};

pub use wit::exports::switchyard::plugin::set_router::Decision;
pub use wit::exports::switchyard::plugin::set_router_batch::{Pin, SetTable, SlotRange};

/// The cell that serves global traffic.
pub const CENTER_CELL: &str = "CENTER";

/// The number of slots SET ranges divide among themselves.
pub const SLOTS: u32 = 10_000;

/// The slot of a routing variable: FNV-1a 64 of its UTF-8 bytes, modulo
/// [`SLOTS`] (the broker's and every client's function: docs/SET.md).
pub fn slot_of(variable: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in variable.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(SLOTS)) as u32
}

/// The cell `table` gives `variable`: its pin, else the SET whose range
/// holds its slot.
pub fn cell_of<'t>(table: &'t SetTable, variable: &str) -> Option<&'t str> {
    if let Some(pin) = table.pins.iter().find(|p| p.value == variable) {
        return Some(&pin.cell);
    }
    let slot = slot_of(variable);
    table
        .ranges
        .iter()
        .find(|r| (r.low..=r.high).contains(&slot))
        .map(|r| r.set.as_str())
}

pub trait SetRouter: 'static {
    fn describe() -> PluginInfo;
    /// `local_set` is the id of the SET this broker belongs to.
    fn route(message: &Message, body: &Body<'_>, local_set: &str) -> Decision;
    /// One decision per message of a publish batch, under the broker's
    /// SET table. The default asks [`SetRouter::route`] about each.
    fn route_batch(messages: &[Message], bodies: &[Body<'_>], table: &SetTable) -> Vec<Decision> {
        messages
            .iter()
            .zip(bodies)
            .map(|(message, body)| Self::route(message, body, &table.local_cell))
            .collect()
    }
}

#[doc(hidden)]
pub struct SetRouterExport<T>(PhantomData<T>);

impl<T: SetRouter> wit::Guest for SetRouterExport<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
}

impl<T: SetRouter> wit::exports::switchyard::plugin::set_router::Guest for SetRouterExport<T> {
    fn route(message: Message, bodies: &Bodies, local_set: String) -> Decision {
        T::route(
            &message,
            &Body::from_host(bodies, 0, message.body_size),
            &local_set,
        )
    }
}

impl<T: SetRouter> wit::exports::switchyard::plugin::set_router_batch::Guest
    for SetRouterExport<T>
{
    fn route_batch(messages: Vec<Message>, bodies: &Bodies, table: SetTable) -> Vec<Decision> {
        let bodies: Vec<Body<'_>> = messages
            .iter()
            .zip(0u32..)
            .map(|(message, index)| Body::from_host(bodies, index, message.body_size))
            .collect();
        T::route_batch(&messages, &bodies, &table)
    }
}

/// Exports `$plugin` (a [`SetRouter`]) as this component's SET router,
/// with both `route` and `route-batch`.
#[macro_export]
macro_rules! export_set_router {
    ($plugin:ty) => {
        // Only wasm builds export: natively the plugin is an ordinary library,
        // so several plugins can be linked into one test or benchmark binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardSetRouterExport = $crate::set_router::SetRouterExport<$plugin>;
            $crate::bindings::set_router::export!(__SwitchyardSetRouterExport with_types_in $crate::bindings::set_router);
        };
    };
}
