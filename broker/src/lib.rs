//! Switchyard: a message broker whose routing is programmable with sandboxed
//! WebAssembly plugins. See `docs/ARCHITECTURE.md` for the map.

pub mod bench;
pub mod cli;

// The layers, each a crate of its own (docs/ARCHITECTURE.md), under the
// names the rest of this crate, the tests and the benches use.
pub use switchyard_base::{clock, ratelimit};
pub use switchyard_core as broker;
pub use switchyard_plugin_host as plugins;
pub use switchyard_server as server;
pub use switchyard_storage as storage;
