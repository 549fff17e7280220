//! Switchyard: a message broker whose routing is programmable with sandboxed
//! WebAssembly plugins. See `docs/ARCHITECTURE.md` for the map.

pub mod bench;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod plugins;
pub mod ratelimit;
pub mod server;
pub mod storage;
