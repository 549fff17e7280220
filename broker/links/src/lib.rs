//! Links to the other cells' brokers: for every cell that messages wait
//! for (an outbox) and every peer in the SET table, one task takes the
//! cell's messages from the core in order, publishes them to that cell's
//! broker over the Switchyard protocol (QUIC + TLS verified against the
//! peer's CA, as the peer's `cell-peer` user) with confirms, and settles
//! them once confirmed. The core decides and stores; this crate carries.
//!
//! - `link` — one cell's forwarding loop: connect, forward, back off.
//! - `supervisor` — starts a link per cell as the table names them.

mod link;
mod supervisor;

pub use supervisor::start;
