//! An in-memory stand-in for the host capabilities, so plugins run under
//! `cargo test` on the host target. State is per thread, which keeps
//! parallel tests apart.

use alloc::string::String;
use alloc::vec::Vec;
use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::host::Level;

#[derive(Default)]
struct State {
    now_ms: u64,
    config: BTreeMap<String, String>,
    kv: BTreeMap<String, (Vec<u8>, Option<u64>)>,
    logs: Vec<(Level, String)>,
}

std::thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { now_ms: 1_700_000_000_000, ..State::default() });
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Clears the key/value store, configuration and captured logs.
pub fn reset() {
    with(|s| {
        *s = State {
            now_ms: s.now_ms,
            ..State::default()
        }
    })
}

pub fn set_now_ms(now: u64) {
    with(|s| s.now_ms = now)
}

pub fn advance_ms(delta: u64) {
    with(|s| s.now_ms += delta)
}

pub fn set_config(name: &str, value: &str) {
    with(|s| s.config.insert(name.into(), value.into()));
}

/// Log lines the plugin emitted since the last [`reset`].
pub fn logs() -> Vec<(Level, String)> {
    with(|s| s.logs.clone())
}

fn live(entry: &(Vec<u8>, Option<u64>), now: u64) -> bool {
    entry.1.is_none_or(|expiry| expiry > now)
}

pub(crate) fn log(level: Level, message: &str) {
    with(|s| s.logs.push((level, message.into())))
}
pub(crate) fn now_ms() -> u64 {
    with(|s| s.now_ms)
}
pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
    with(|s| {
        let now = s.now_ms;
        s.kv.get(key).filter(|e| live(e, now)).map(|e| e.0.clone())
    })
}
pub(crate) fn kv_set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
    with(|s| {
        let expiry = ttl_ms.map(|ttl| s.now_ms + ttl);
        s.kv.insert(key.into(), (value.to_vec(), expiry));
    })
}
pub(crate) fn kv_set_if_absent(key: &str, value: &[u8], ttl_ms: Option<u64>) -> bool {
    if kv_get(key).is_some() {
        return false;
    }
    kv_set(key, value, ttl_ms);
    true
}
pub(crate) fn kv_delete(key: &str) {
    with(|s| s.kv.remove(key));
}
pub(crate) fn config_get(name: &str) -> Option<String> {
    with(|s| s.config.get(name).cloned())
}
pub(crate) fn config_all() -> Vec<(String, String)> {
    with(|s| {
        s.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}
