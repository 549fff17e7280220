//! Typed plugin errors. Every error names the plugin (`name@version`) and the
//! cause, so an operator reading one log line knows what failed and why.

use std::time::Duration;

use super::bindings::PluginKind;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: call exceeded its deadline of {deadline:?}")]
    Timeout { plugin: String, deadline: Duration },

    #[error("plugin {plugin}: exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit { plugin: String, limit_bytes: usize },

    #[error("plugin {plugin}: ran out of fuel ({fuel} units per call)")]
    FuelExhausted { plugin: String, fuel: u64 },

    #[error("plugin {plugin}: trapped: {message}")]
    Trap { plugin: String, message: String },

    #[error("plugin {plugin}: returned an invalid result: {reason}")]
    InvalidResult { plugin: String, reason: String },

    #[error(
        "plugin {plugin}: quarantined after {failures} recent failures; next attempt in {retry_in:?}"
    )]
    Quarantined {
        plugin: String,
        failures: u32,
        retry_in: Duration,
    },

    /// A kv write past a quota (see `kv_limits`): the call ended, but the
    /// plugin is not at fault and its health is unaffected.
    #[error("plugin {plugin}: kv write refused in scope {scope}: {reason}")]
    KvRefused {
        plugin: String,
        scope: String,
        reason: String,
    },

    /// The plugin answered, and its answer is "no" (e.g. an invalid binding).
    #[error("plugin {plugin}: {reason}")]
    Rejected { plugin: String, reason: String },

    /// A component that cannot be loaded: not wasm, wrong world, bad imports.
    #[error("invalid plugin component: {reason}")]
    Invalid { reason: String },

    #[error("plugin {name} is {}, not {}", actual.a_plugin(), expected.a_plugin())]
    WrongKind {
        name: String,
        expected: PluginKind,
        actual: PluginKind,
    },

    #[error("no plugin named {name}{}", version.as_ref().map(|v| format!(" with version {v}")).unwrap_or_default())]
    NotFound {
        name: String,
        version: Option<String>,
    },

    /// A built-in that could not load at start; the broker serves the rest.
    #[error("plugin {name} failed to load: {reason}")]
    Unavailable { name: String, reason: String },

    #[error("plugin {name}: {reason}")]
    Conflict { name: String, reason: String },

    #[error("plugin storage: {0}")]
    Storage(String),
}

impl PluginError {
    pub(crate) fn invalid(reason: impl std::fmt::Display) -> Self {
        PluginError::Invalid {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn storage(error: impl std::fmt::Display) -> Self {
        PluginError::Storage(error.to_string())
    }

    /// True for failures of the plugin's code (as opposed to its answers or
    /// the operator's requests): these count towards quarantine.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            PluginError::Timeout { .. }
                | PluginError::MemoryLimit { .. }
                | PluginError::FuelExhausted { .. }
                | PluginError::Trap { .. }
                | PluginError::InvalidResult { .. }
        )
    }
}
