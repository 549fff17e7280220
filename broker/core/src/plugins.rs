//! Plugin administration on a running broker: load, activate, roll back and
//! unload, for administrators only. The registry validates a component
//! completely before anything changes, so a refused upload leaves every
//! exchange routing exactly as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchyard_protocol::Field;

use super::{Broker, BrokerError, Principal};
use switchyard_plugin_host::{BUILTIN_PLUGINS, LoadOptions, PluginVersion};

/// Largest component the broker accepts (Python and JavaScript components
/// carry their interpreter and weigh 12–20 MiB).
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

/// What to load: the component and how to register it.
pub struct PluginUpload<'a> {
    pub component: &'a [u8],
    /// Register under this name instead of the one the plugin reports.
    pub name: Option<&'a str>,
    pub config: &'a [Field],
    /// Make the new version active at once (a new plugin always is).
    pub activate: bool,
}

impl Broker {
    pub fn load_plugin(
        &self,
        principal: &Principal,
        upload: PluginUpload<'_>,
    ) -> Result<Arc<PluginVersion>, BrokerError> {
        principal.require_administrator("loading a plugin")?;
        if upload.component.len() > MAX_PLUGIN_BYTES {
            return Err(BrokerError::invalid_argument(format!(
                "the component is {} bytes; plugins may be at most {MAX_PLUGIN_BYTES} bytes",
                upload.component.len()
            )));
        }
        let config = plugin_config(upload.config)?;
        let version = self.registry.load(
            upload.component,
            LoadOptions {
                name: upload.name.map(str::to_string),
                config,
                activate: upload.activate,
            },
        )?;
        tracing::info!(plugin = %version.label(), user = %principal.user, "plugin loaded");
        Ok(version)
    }

    pub fn activate_plugin(
        &self,
        principal: &Principal,
        name: &str,
        version: &str,
    ) -> Result<Arc<PluginVersion>, BrokerError> {
        principal.require_administrator("activating a plugin version")?;
        Ok(self.registry.activate(name, version)?)
    }

    pub fn rollback_plugin(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Arc<PluginVersion>, BrokerError> {
        principal.require_administrator("rolling back a plugin")?;
        Ok(self.registry.rollback(name)?)
    }

    /// Removes a plugin and all its versions, unless it is built in or an
    /// exchange in any vhost uses it.
    pub fn unload_plugin(&self, principal: &Principal, name: &str) -> Result<(), BrokerError> {
        principal.require_administrator("unloading a plugin")?;
        if BUILTIN_PLUGINS.iter().any(|(builtin, _)| *builtin == name) {
            return Err(BrokerError::precondition(format!(
                "plugin '{name}' is built in and cannot be unloaded (load and activate another \
                 version instead)"
            )));
        }
        self.registry.get(name)?;
        let users = self.plugin_users(name);
        if !users.is_empty() {
            return Err(BrokerError::precondition(format!(
                "plugin '{name}' is in use by {}: delete those exchanges first",
                users.join(", ")
            )));
        }
        self.registry.unload(name)?;
        tracing::info!(plugin = %name, user = %principal.user, "plugin unloaded");
        Ok(())
    }

    /// The exchanges whose type or filter is plugin `name`, as
    /// `exchange 'x' in vhost 'v'`.
    fn plugin_users(&self, name: &str) -> Vec<String> {
        let mut users = Vec::new();
        for vhost in self.vhosts.read().unwrap().values() {
            for exchange in vhost.exchanges.read().unwrap().values() {
                let routes = exchange
                    .router
                    .as_ref()
                    .is_some_and(|router| router.plugin().name() == name);
                let filters = exchange
                    .filter
                    .as_ref()
                    .is_some_and(|filter| filter.plugin().name() == name);
                if routes || filters {
                    users.push(format!(
                        "exchange '{}' in vhost '{}'{}",
                        exchange.name(),
                        vhost.name,
                        if filters { " (as its filter)" } else { "" }
                    ));
                }
            }
        }
        users.sort();
        users
    }
}

/// Plugin settings are text; numbers and flags are accepted and written out.
fn plugin_config(fields: &[Field]) -> Result<BTreeMap<String, String>, BrokerError> {
    fields
        .iter()
        .map(|field| {
            let text = field.value.as_text().ok_or_else(|| {
                BrokerError::invalid_argument(format!(
                    "plugin setting '{}' must be text, a number or a flag",
                    field.name
                ))
            })?;
            Ok((field.name.clone(), text))
        })
        .collect()
}
