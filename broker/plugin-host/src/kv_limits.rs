//! Quotas on plugin key/value state, and the error a write past them gets.
//!
//! Quotas are per (plugin, scope) — keys and bytes — plus a cap on a
//! plugin's bytes over all its scopes, which bounds the database however
//! many vhosts and exchanges use the plugin. Only writes that grow usage are
//! refused: overwriting with something smaller, deleting and expiring
//! always work, so a full scope can drain.

use std::time::Duration;

/// Operator settings (`[sandbox.kv]` in the config file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvLimits {
    /// Keys one plugin may hold in one scope (vhost or exchange).
    pub max_keys: u64,
    /// Bytes (keys + values) one plugin may hold in one scope.
    pub max_bytes: u64,
    /// Bytes one plugin may hold over all scopes.
    pub max_plugin_bytes: u64,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Bytes the plugin kv database's files may take on disk, all plugins
    /// together (sled's files run well past the data they hold): past it,
    /// writes that grow state are refused.
    pub max_disk_bytes: u64,
    /// How often expired entries are removed in the background.
    #[serde(with = "super::sandbox::millis")]
    pub sweep_interval: Duration,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            // An idempotency window of 100k message ids per exchange.
            max_keys: 100_000,
            max_bytes: 16 << 20,
            max_plugin_bytes: 256 << 20,
            max_key_bytes: 1024,
            max_value_bytes: 64 << 10,
            max_disk_bytes: 2 << 30,
            sweep_interval: Duration::from_secs(5),
        }
    }
}

impl KvLimits {
    /// Why a write that would leave these totals is refused, if it is.
    /// `adds_key`/`grows`: whether the write adds a key / adds bytes.
    pub(crate) fn exceeded(
        &self,
        keys: u64,
        bytes: u64,
        plugin_bytes: u64,
        adds_key: bool,
        grows: bool,
    ) -> Option<String> {
        if adds_key && keys > self.max_keys {
            Some(format!(
                "the scope already holds {} keys (limit {})",
                keys - 1,
                self.max_keys
            ))
        } else if grows && bytes > self.max_bytes {
            Some(format!(
                "the write would take the scope to {bytes} bytes (limit {})",
                self.max_bytes
            ))
        } else if grows && plugin_bytes > self.max_plugin_bytes {
            Some(format!(
                "the write would take the plugin to {plugin_bytes} bytes over all scopes (limit {})",
                self.max_plugin_bytes
            ))
        } else {
            None
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_keys == 0
            || self.max_bytes == 0
            || self.max_plugin_bytes == 0
            || self.max_disk_bytes == 0
        {
            return Err("sandbox.kv: max_keys, max_bytes, max_plugin_bytes and \
                 max_disk_bytes must be above 0"
                .into());
        }
        if self.sweep_interval < Duration::from_millis(10) {
            return Err(format!(
                "sandbox.kv.sweep_interval must be at least 10 ms, not {} ms",
                self.sweep_interval.as_millis()
            ));
        }
        Ok(())
    }
}

/// What one entry costs against the byte quotas: its stored key (scope
/// prefix included) and stored value (expiry included).
pub(crate) fn entry_bytes(stored_key: usize, stored_value: usize) -> u64 {
    (stored_key + stored_value) as u64
}

/// One (plugin, scope)'s holdings.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) keys: u64,
    pub(crate) bytes: u64,
}

/// A plugin's kv holdings, for `plugin list`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KvUsage {
    pub keys: u64,
    pub bytes: u64,
    pub scopes: u64,
    /// Writes refused by a quota since the broker started.
    pub refused_writes: u64,
}

/// A kv write the host refused. The 0.1.x `kv` interface has no error
/// result, so the refusal ends the plugin's call with this error, which the
/// caller (a publisher, say) sees; it is not held against the plugin's
/// health — the quota protects the broker, the plugin did nothing wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kv write refused for plugin {plugin} in scope {scope}: {reason}")]
pub struct KvRefused {
    pub plugin: String,
    pub scope: String,
    pub reason: String,
}
