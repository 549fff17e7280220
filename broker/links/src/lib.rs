//! Links to the other cells' brokers: for every cell that messages wait
//! for (an outbox) and every peer in the SET table, one task takes the
//! cell's messages from the core in order, publishes them to that cell's
//! broker over the Switchyard protocol (QUIC + TLS verified against the
//! peer's CA, as the peer's `cell-peer` user) with confirms, and settles
//! them once confirmed. The core decides and stores; this crate carries.
//!
//! - `peer` — what links share: the peer, sessions per vhost, backoff.
//! - `link` — one cell's forwarding loop.
//! - `federation` — following a global exchange on another cell.
//! - `supervisor` — starts a link per cell and per federated exchange.

mod federation;
mod link;
mod peer;
mod supervisor;

pub use supervisor::start;
