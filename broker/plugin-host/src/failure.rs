//! What ended a failed plugin call: the wasmtime error (or broken contract)
//! turned into a [`PluginError`] that names the plugin and the real cause.

use wasmtime::Trap;

use super::capabilities::StoreState;
use super::error::PluginError;
use super::kv::KvRefused;

/// Why a call failed, before it is attributed to the plugin.
pub(crate) enum CallFailure {
    Wasm(wasmtime::Error),
    /// The call returned, but its result breaks the contract.
    InvalidResult(String),
}

impl From<wasmtime::Error> for CallFailure {
    fn from(error: wasmtime::Error) -> Self {
        CallFailure::Wasm(error)
    }
}

/// Names what ended a failed call, for the plugin labelled `plugin`.
pub(crate) fn classify(
    plugin: &str,
    fuel: Option<u64>,
    failure: CallFailure,
    state: &StoreState,
) -> PluginError {
    let plugin = plugin.to_string();
    let error = match failure {
        CallFailure::InvalidResult(reason) => {
            return PluginError::InvalidResult { plugin, reason };
        }
        CallFailure::Wasm(error) => error,
    };
    if let Some(refused) = error.downcast_ref::<KvRefused>() {
        return PluginError::KvRefused {
            plugin,
            scope: refused.scope.clone(),
            reason: refused.reason.clone(),
        };
    }
    // The trap itself first: a plugin whose memory growth was refused
    // may carry on and then spin into its deadline — that is a timeout.
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout {
            plugin,
            deadline: state.clock.deadline(),
        },
        Some(Trap::OutOfFuel) => PluginError::FuelExhausted {
            plugin,
            fuel: fuel.unwrap_or_default(),
        },
        // Any other trap after a refused growth is the allocator giving
        // up (Rust aborts on a failed allocation).
        _ if state.memory.exceeded => PluginError::MemoryLimit {
            plugin,
            limit_bytes: state.memory.limit_bytes,
        },
        _ => {
            let mut message = trap_message(&error);
            if let Some(logged) = &state.last_error_log {
                message = format!("{logged} ({message})");
            }
            PluginError::Trap { plugin, message }
        }
    }
}

/// One line for a trap: what happened and the innermost wasm functions, as
/// `wasm \`unreachable\` instruction executed (in route ← main)`.
fn trap_message(error: &wasmtime::Error) -> String {
    let what = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error
            .chain()
            .last()
            .map(|cause| cause.to_string())
            .unwrap_or_default(),
    };
    let frames: Vec<String> = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|trace| {
            trace
                .frames()
                .iter()
                .take(3)
                .map(|frame| frame.func_name().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    let what = what.split_whitespace().collect::<Vec<_>>().join(" ");
    if frames.is_empty() {
        what
    } else {
        format!("{what} (in {})", frames.join(" ← "))
    }
}
