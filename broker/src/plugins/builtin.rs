//! The built-in plugins, compiled from `plugins/` and committed in
//! `plugins/dist/`, embedded in the binary so a fresh broker works with no
//! files besides itself.

use super::error::PluginError;
use super::registry::{LoadOptions, PluginRegistry};

/// (name, component bytes) of every built-in plugin.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}
pub use embedded::BUILTIN_PLUGINS;

/// The component of a built-in plugin by name.
pub fn builtin_component(name: &str) -> Option<&'static [u8]> {
    BUILTIN_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

impl PluginRegistry {
    /// Registers every built-in plugin not yet present. An operator's choice
    /// of active version survives: a built-in only becomes active when its
    /// plugin is new.
    pub fn install_builtins(&self) -> Result<(), PluginError> {
        for (name, bytes) in BUILTIN_PLUGINS {
            if bytes.is_empty() {
                return Err(PluginError::invalid(format!(
                    "built-in plugin {name} was missing from plugins/dist when this binary was \
                     built; run plugins/build.sh and rebuild"
                )));
            }
            self.load(bytes, LoadOptions::default()).map_err(|error| {
                PluginError::invalid(format!("built-in plugin {name} failed to load: {error}"))
            })?;
        }
        Ok(())
    }
}
