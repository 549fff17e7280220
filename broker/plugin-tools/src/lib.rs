//! The plugin developer's tools behind `switchyard plugin …`: new projects
//! from templates ([`scaffold`]), building components from Rust, C,
//! Python, JavaScript and AssemblyScript ([`build`]), the WIT files a
//! project needs ([`wit`]), and the offline commands — test against the
//! conformance suite, inspect, componentize, the dist manifest
//! ([`offline`]). The WIT and wasm-encoding crates live here, not in the
//! broker.

pub mod build;
pub mod language;
pub mod offline;
pub mod scaffold;
pub mod wit;

pub use language::{Kind, Language};
