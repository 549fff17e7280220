//! Calling the filter and SET-router worlds (dead-letter policies are in
//! `dead_letter`). Each wrapper holds the plugin slot (so it follows hot
//! swaps) and checks the plugin's answer before the broker acts on it.

use bytes::Bytes;

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

impl SetRouter {
    pub fn route(
        &self,
        message: &Message,
        body: &Bytes,
        local_set: &str,
    ) -> Result<Decision, PluginError> {
        self.slot.active().call(&self.scope, |instance| {
            let PluginInstance {
                store,
                exports: KindExports::SetRouter(exports),
                ..
            } = instance
            else {
                unreachable!("set-router slots hold set-router plugins");
            };
            let decision = with_bodies(store, vec![body.clone()], |store, bodies| {
                exports.call_route(store, message, bodies, local_set)
            })?;
            match &decision {
                Decision::Set(set) => check_text("the SET id", set)?,
                Decision::Reject(reason) => check_text("a rejection reason", reason)?,
                Decision::Local | Decision::Center => {}
            }
            Ok(decision)
        })
    }
}
