//! What a plugin can reach: the host side of the `log`, `clock`, `kv` and
//! `config` imports and of the `bodies` resource. Nothing else is linked, so
//! a plugin has no filesystem, network or environment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::component::{Resource, ResourceTable};

use super::bindings::switchyard::plugin::{clock, config, kv, log, types};
use super::kv::{KvScope, PluginKv};
use super::log_limit::{LogDecision, LogLimiter};
use super::sandbox::{CallClock, MemoryCap};

/// The bodies of the messages of one call, handed to the plugin as a
/// borrowed resource and read on demand. Cloning `Bytes` shares, not copies.
pub struct CallBodies(pub Vec<Bytes>);

/// Per-instance host state: everything a plugin's imports can touch.
pub(crate) struct StoreState {
    /// `name@version`, for logs and errors.
    pub(crate) plugin: Arc<str>,
    /// Shared by every instance of the version.
    pub(crate) log_limit: Arc<LogLimiter>,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    /// `None` while a component is being validated: it gets no storage yet.
    pub(crate) kv: Option<PluginKv>,
    /// Whose state the call in progress reads and writes; set by the host
    /// before every call.
    pub(crate) kv_scope: KvScope,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// When the call in progress started; the epoch callback checks it.
    pub(crate) clock: CallClock,
    /// The last error-level line the plugin logged (a panic message, say),
    /// attached to the error if the call then traps.
    pub(crate) last_error_log: Option<String>,
}

/// The longest log line kept from a plugin; longer lines are cut.
const MAX_LOG_LINE: usize = 4096;

impl log::Host for StoreState {
    fn log(&mut self, level: log::Level, mut message: String) {
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin;
        let dropped = |n: u64| {
            tracing::warn!(
                plugin,
                dropped = n,
                "plugin {plugin}: {n} log lines dropped"
            )
        };
        match self.log_limit.admit(Instant::now()) {
            LogDecision::Write { dropped_before } => {
                if dropped_before > 0 {
                    dropped(dropped_before);
                }
                match level {
                    log::Level::Trace => tracing::trace!(plugin, "{message}"),
                    log::Level::Debug => tracing::debug!(plugin, "{message}"),
                    log::Level::Info => tracing::info!(plugin, "{message}"),
                    log::Level::Warn => tracing::warn!(plugin, "{message}"),
                    log::Level::Error => tracing::error!(plugin, "{message}"),
                }
            }
            LogDecision::Drop { summary } => summary.into_iter().for_each(dropped),
        }
        // Kept even when the line was dropped: it explains a trap that follows.
        if level == log::Level::Error {
            self.last_error_log = Some(message);
        }
    }
}

impl clock::Host for StoreState {
    fn now_ms(&mut self) -> u64 {
        switchyard_base::clock::system_now_ms()
    }
}

impl kv::Host for StoreState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.as_ref()?.get(&self.kv_scope, &key)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> wasmtime::Result<()> {
        match &self.kv {
            Some(kv) => Ok(kv.set(&self.kv_scope, &key, &value, ttl_ms)?),
            None => Ok(()),
        }
    }

    fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<bool> {
        match &self.kv {
            Some(kv) => Ok(kv.set_if_absent(&self.kv_scope, &key, &value, ttl_ms)?),
            None => Ok(false),
        }
    }

    fn delete(&mut self, key: String) {
        if let Some(kv) = &self.kv {
            kv.delete(&self.kv_scope, &key)
        }
    }
}

impl config::Host for StoreState {
    fn get(&mut self, name: String) -> Option<String> {
        self.config.get(&name).cloned()
    }

    fn all(&mut self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl types::Host for StoreState {}

impl types::HostBodies for StoreState {
    fn read(&mut self, bodies: Resource<CallBodies>, index: u32, offset: u64, len: u32) -> Vec<u8> {
        let Ok(CallBodies(bodies)) = self.table.get(&bodies) else {
            return Vec::new();
        };
        let Some(body) = bodies.get(index as usize) else {
            return Vec::new();
        };
        let start = usize::try_from(offset).map_or(body.len(), |o| o.min(body.len()));
        let end = start.saturating_add(len as usize).min(body.len());
        body[start..end].to_vec()
    }

    fn drop(&mut self, bodies: Resource<CallBodies>) -> wasmtime::Result<()> {
        self.table.delete(bodies)?;
        Ok(())
    }
}
