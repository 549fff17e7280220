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

/// How often loading a built-in is tried when it runs out of time (a busy
/// machine) before the broker goes on without it.
const LOAD_ATTEMPTS: u32 = 3;

impl PluginRegistry {
    /// Registers every built-in plugin not yet present. An operator's choice
    /// of active version survives: a built-in only becomes active when its
    /// plugin is new.
    ///
    /// A built-in that cannot load does not stop the broker: the error is
    /// logged, the rest of the broker serves, and whoever asks for that
    /// plugin is told why it is missing. Returns the failures.
    pub fn install_builtins(&self) -> Vec<(String, PluginError)> {
        let mut failures = Vec::new();
        for (name, bytes) in BUILTIN_PLUGINS {
            match self.install_builtin(bytes) {
                Ok(()) => self.mark_unavailable(name, None),
                Err(error) => {
                    tracing::error!(plugin = %name, %error, "built-in plugin failed to load; the broker serves without it");
                    self.mark_unavailable(name, Some(error.to_string()));
                    failures.push((name.to_string(), error));
                }
            }
        }
        failures
    }

    fn install_builtin(&self, bytes: &[u8]) -> Result<(), PluginError> {
        if bytes.is_empty() {
            return Err(PluginError::invalid(
                "it was missing from plugins/dist when this binary was built; run \
                 plugins/build.sh and rebuild",
            ));
        }
        let mut attempt = 1;
        loop {
            match self.load(bytes, LoadOptions::default()) {
                Ok(_) => return Ok(()),
                // The data dir holds an earlier binary's build under the
                // same version number.
                Err(PluginError::Conflict { .. }) if self.replace_builtin(bytes)? => return Ok(()),
                Err(PluginError::Timeout { .. }) if attempt < LOAD_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error),
            }
        }
    }
}
