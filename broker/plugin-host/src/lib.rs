//! The plugin host: runs exchange types, dead-letter policies, filters and
//! SET routers as sandboxed WebAssembly components (wasmtime, component
//! model), with contracts from `wit/`.
//!
//! Layers, bottom up:
//! - [`bindings`] — the only `bindgen!` seam; WIT types re-exported here.
//! - `engine` / `sandbox` / `capabilities` / `kv` — the wasmtime engine with
//!   its compile cache and epoch ticker, the limits of each call, and what a
//!   plugin may reach (log, clock, per-plugin kv with TTL, its config).
//! - `version` — one loaded version: validation at load, instance pool,
//!   sandboxed calls, failure classification, quarantine.
//! - [`PluginRegistry`] — names → versions, atomic activation, rollback,
//!   persistence in sled.
//! - [`ExchangeRouter`], [`DeadLetterPolicy`], [`MessageFilter`],
//!   [`SetRouter`] — typed calls per world, with results checked.
//! - [`conformance`] — the behaviour tables every plugin of a world is held to.

mod admission;
pub mod bindings;
mod builtin;
mod cache;
mod capabilities;
pub mod conformance;
mod dead_letter;
mod engine;
mod error;
mod exchange;
mod failure;
mod handle;
mod kv;
mod kv_disk;
mod kv_limits;
mod language;
mod log_limit;
pub mod manifest;
mod plugin_limits;
mod policies;
mod quarantine;
mod registry;
mod sandbox;
mod stats;
mod version;

pub use bindings::{
    Action, Binding, DeathReason, DeathRecord, Decision, Field, Message, PluginInfo, PluginKind,
    Properties, Republish, Retry, Value, Verdict, WIT_PACKAGE, WIT_VERSION, interface_name,
};
pub use builtin::{BUILTIN_PLUGINS, builtin_component};
pub use cache::Targets;
pub use capabilities::CallBodies;
pub use dead_letter::{DeadLetterPolicy, DeathInput, DeathNotice, PolicyAction};
pub use engine::{PluginEngine, sha256_hex};
pub use error::PluginError;
pub use exchange::{BindingTable, ExchangeRouter, RouteResult, Routed};
pub use handle::{DeadLetterKind, FilterKind, PluginHandle, SetRouterKind, SlotKind};
pub use kv::{KvLimits, KvRefused, KvScope, KvStore, KvUsage, PluginKv};
pub use language::{LANGUAGE_SECTION, detect_language};
pub use plugin_limits::CallLimits;
pub use policies::{MessageFilter, SetRouter, SetTable};
pub use registry::{LoadOptions, PluginRegistry, PluginSlot, PluginSummary};
pub use sandbox::SandboxLimits;
pub use stats::StatsSnapshot;
pub use version::PluginVersion;
