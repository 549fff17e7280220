//! A typed handle on a plugin slot: the slot (so calls follow hot swaps)
//! and the kv scope its calls see. Each single-decision world's wrapper —
//! `DeadLetterPolicy`, `MessageFilter`, `SetRouter` — is this handle for
//! its kind, with its own calls in its own file.

use std::marker::PhantomData;
use std::sync::Arc;

use super::bindings::PluginKind;
use super::error::PluginError;
use super::kv::KvScope;
use super::registry::PluginSlot;

/// A plugin kind a handle can be typed by.
pub trait SlotKind {
    const KIND: PluginKind;
}

/// Dead-letter policies.
pub struct DeadLetterKind;
/// Filters.
pub struct FilterKind;
/// SET routers.
pub struct SetRouterKind;

impl SlotKind for DeadLetterKind {
    const KIND: PluginKind = PluginKind::DeadLetter;
}
impl SlotKind for FilterKind {
    const KIND: PluginKind = PluginKind::Filter;
}
impl SlotKind for SetRouterKind {
    const KIND: PluginKind = PluginKind::SetRouter;
}

pub struct PluginHandle<K> {
    pub(crate) slot: Arc<PluginSlot>,
    pub(crate) scope: KvScope,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for PluginHandle<K> {
    fn clone(&self) -> Self {
        PluginHandle {
            slot: self.slot.clone(),
            scope: self.scope.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: SlotKind> PluginHandle<K> {
    /// A handle on `slot`, which must hold a plugin of kind `K`.
    pub fn new(slot: Arc<PluginSlot>) -> Result<Self, PluginError> {
        if slot.kind() != K::KIND {
            return Err(PluginError::WrongKind {
                name: slot.name().into(),
                expected: K::KIND,
                actual: slot.kind(),
            });
        }
        Ok(PluginHandle {
            slot,
            scope: KvScope::host(),
            kind: PhantomData,
        })
    }

    /// The kv state the plugin sees through this handle (the `host` scope
    /// unless set).
    pub fn with_kv_scope(mut self, scope: KvScope) -> Self {
        self.scope = scope;
        self
    }

    /// The plugin's slot: its active version's `label()` names it in logs.
    pub fn plugin(&self) -> &Arc<PluginSlot> {
        &self.slot
    }
}
