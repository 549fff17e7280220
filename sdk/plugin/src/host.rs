//! The capabilities the host grants a plugin: logging, a clock, a private
//! persistent key/value store with TTL, and the plugin's configuration.
//!
//! On wasm these call the host; on the host target they are served by the
//! in-memory double in [`crate::testing`].

use alloc::string::String;
use alloc::vec::Vec;

pub use crate::bindings::base::switchyard::plugin::log::Level;

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::bindings::base::switchyard::plugin as wit;

    pub fn log(level: Level, message: &str) {
        wit::log::log(level, message)
    }
    pub fn now_ms() -> u64 {
        wit::clock::now_ms()
    }
    pub fn kv_get(key: &str) -> Option<Vec<u8>> {
        wit::kv::get(key)
    }
    pub fn kv_set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
        wit::kv::set(key, value, ttl_ms)
    }
    pub fn kv_set_if_absent(key: &str, value: &[u8], ttl_ms: Option<u64>) -> bool {
        wit::kv::set_if_absent(key, value, ttl_ms)
    }
    pub fn kv_delete(key: &str) {
        wit::kv::delete(key)
    }
    pub fn config_get(name: &str) -> Option<String> {
        wit::config::get(name)
    }
    pub fn config_all() -> Vec<(String, String)> {
        wit::config::all()
    }
}

#[cfg(not(target_arch = "wasm32"))]
use crate::testing as imp;

/// Emits a log line attributed to this plugin.
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imp::now_ms()
}

/// The plugin's private, persistent key/value store.
pub mod kv {
    use super::*;

    pub fn get(key: &str) -> Option<Vec<u8>> {
        imp::kv_get(key)
    }
    pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
        imp::kv_set(key, value, ttl_ms)
    }
    /// Stores only if absent or expired; returns whether it stored.
    pub fn set_if_absent(key: &str, value: &[u8], ttl_ms: Option<u64>) -> bool {
        imp::kv_set_if_absent(key, value, ttl_ms)
    }
    pub fn delete(key: &str) {
        imp::kv_delete(key)
    }
}

/// The plugin's settings, given by the operator at load time.
pub mod config {
    use super::*;

    pub fn get(name: &str) -> Option<String> {
        imp::config_get(name)
    }
    pub fn all() -> Vec<(String, String)> {
        imp::config_all()
    }
}
