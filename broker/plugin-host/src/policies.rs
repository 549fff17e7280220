//! Calling the filter and SET-router worlds (dead-letter policies are in
//! `dead_letter`). Each wrapper holds the plugin slot (so it follows hot
//! swaps) and checks the plugin's answer before the broker acts on it.

use bytes::Bytes;

use super::bindings::exports::switchyard::plugin::set_router_batch;
use super::bindings::{Decision, Message, Verdict};
use super::error::PluginError;
use super::failure::CallFailure;
use super::handle::{FilterKind, PluginHandle, SetRouterKind};
use super::version::{KindExports, PluginInstance, with_bodies};

/// Longest exchange, routing key, SET id or reason a plugin may return.
const MAX_NAME_BYTES: usize = 4096;

pub(crate) fn check_text(what: &str, text: &str) -> Result<(), CallFailure> {
    if text.len() > MAX_NAME_BYTES {
        return Err(CallFailure::InvalidResult(format!(
            "{what} is {} bytes; the limit is {MAX_NAME_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

/// A filter plugin (idempotency, duplicate suppression).
pub type MessageFilter = PluginHandle<FilterKind>;

impl MessageFilter {
    /// One verdict per message, from one plugin call.
    pub fn check_batch(
        &self,
        messages: &[Message],
        bodies: &[Bytes],
    ) -> Result<Vec<Verdict>, PluginError> {
        let call_bodies: Vec<Bytes> = (0..messages.len())
            .map(|i| bodies.get(i).cloned().unwrap_or_default())
            .collect();
        self.slot.active().call(&self.scope, |instance| {
            let PluginInstance {
                store,
                exports: KindExports::Filter(exports),
                ..
            } = instance
            else {
                unreachable!("filter slots hold filter plugins");
            };
            let verdicts = with_bodies(store, call_bodies, |store, bodies| {
                exports.call_check_batch(store, messages, bodies)
            })?;
            if verdicts.len() != messages.len() {
                return Err(CallFailure::InvalidResult(format!(
                    "{} verdicts for {} messages",
                    verdicts.len(),
                    messages.len()
                )));
            }
            for verdict in &verdicts {
                if let Verdict::Reject(reason) = verdict {
                    check_text("a rejection reason", reason)?;
                }
            }
            Ok(verdicts)
        })
    }

    pub fn check(&self, message: &Message, body: &Bytes) -> Result<Verdict, PluginError> {
        let mut verdicts =
            self.check_batch(std::slice::from_ref(message), std::slice::from_ref(body))?;
        Ok(verdicts.remove(0))
    }
}

/// A SET router plugin.
pub type SetRouter = PluginHandle<SetRouterKind>;

/// The broker's SET table, as a SET router is given it.
#[derive(Debug, Clone, Default)]
pub struct SetTable {
    pub local_cell: String,
    pub version: u64,
    /// (SET, low slot, high slot), inclusive.
    pub ranges: Vec<(String, u32, u32)>,
    /// (routing variable, cell).
    pub pins: Vec<(String, String)>,
}

impl SetTable {
    fn to_wit(&self) -> set_router_batch::SetTable {
        set_router_batch::SetTable {
            local_cell: self.local_cell.clone(),
            version: self.version,
            ranges: (self.ranges.iter())
                .map(|(set, low, high)| set_router_batch::SlotRange {
                    set: set.clone(),
                    low: *low,
                    high: *high,
                })
                .collect(),
            pins: (self.pins.iter())
                .map(|(value, cell)| set_router_batch::Pin {
                    value: value.clone(),
                    cell: cell.clone(),
                })
                .collect(),
        }
    }
}

fn check_decision(decision: &Decision) -> Result<(), CallFailure> {
    match decision {
        Decision::Set(set) => check_text("the SET id", set),
        Decision::Reject(reason) => check_text("a rejection reason", reason),
        Decision::Local | Decision::Center => Ok(()),
    }
}

impl SetRouter {
    /// One decision per message: one `route-batch` call against `table`
    /// when the plugin exports it, else `route` per message (a 0.1.0
    /// router, with its own table).
    pub fn route_batch(
        &self,
        messages: &[Message],
        bodies: &[Bytes],
        table: &SetTable,
    ) -> Result<Vec<Decision>, PluginError> {
        let call_bodies: Vec<Bytes> = (0..messages.len())
            .map(|i| bodies.get(i).cloned().unwrap_or_default())
            .collect();
        self.slot.active().call(&self.scope, |instance| {
            let PluginInstance {
                store,
                exports: KindExports::SetRouter(single, batch),
                ..
            } = instance
            else {
                unreachable!("set-router slots hold set-router plugins");
            };
            let decisions = match batch {
                Some(batch) => {
                    let table = table.to_wit();
                    with_bodies(store, call_bodies, |store, bodies| {
                        batch.call_route_batch(store, messages, bodies, &table)
                    })?
                }
                None => {
                    let mut decisions = Vec::with_capacity(messages.len());
                    for (message, body) in messages.iter().zip(call_bodies) {
                        decisions.push(with_bodies(store, vec![body], |store, bodies| {
                            single.call_route(store, message, bodies, &table.local_cell)
                        })?);
                    }
                    decisions
                }
            };
            if decisions.len() != messages.len() {
                return Err(CallFailure::InvalidResult(format!(
                    "{} decisions for {} messages",
                    decisions.len(),
                    messages.len()
                )));
            }
            decisions.iter().try_for_each(check_decision)?;
            Ok(decisions)
        })
    }

    /// The decision about one message (`route-batch` of one when the
    /// plugin has it).
    pub fn route(
        &self,
        message: &Message,
        body: &Bytes,
        table: &SetTable,
    ) -> Result<Decision, PluginError> {
        let mut decisions = self.route_batch(
            std::slice::from_ref(message),
            std::slice::from_ref(body),
            table,
        )?;
        Ok(decisions.remove(0))
    }
}
