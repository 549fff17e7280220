//! The Switchyard wire protocol, shared by the broker and its clients.
//!
//! A connection is QUIC with ALPN [`ALPN`]. The client's first
//! bidirectional stream carries the handshake (`Hello` → `Welcome` or
//! `Close`); every further bidirectional stream the client opens is one
//! channel. On every stream, frames are `length: u32 LE` · `type: u8` ·
//! payload; docs/PROTOCOL.md gives every frame byte by byte.
//!
//! This crate is sans-IO: [`Codec`] turns bytes into [`Frame`]s and back;
//! sockets, tasks and timers belong to the broker and the client.

pub mod cells;
mod codec;
mod delivery;
mod error;
mod frame;
mod stream;
mod transaction;
mod types;
pub mod wire;

pub use codec::{Codec, LENGTH_PREFIX};
pub use delivery::BatchedDelivery;
pub use error::{DecodeError, code};
pub use frame::{Frame, Query};
pub use stream::{GroupMode, StreamOffset};
pub use transaction::TxOutcome;
pub use types::{
    DELAY_HEADER, DELIVER_AT_HEADER, Field, MANDATORY, Message, ORDERING_KEY_HEADER, PERSISTENT,
    Properties, Value, find,
};

/// The QUIC application protocol name.
pub const ALPN: &[u8] = b"switchyard/1";
/// The protocol version sent in `Hello` and `Welcome`. Version 2 added
/// `DeliverBatch`: a broker sends it only on connections whose `Hello` said
/// 2 or more, and answers `Welcome` with the version it speaks on the
/// connection (the lower of the two).
pub const VERSION: u16 = 2;
/// The oldest protocol version a broker accepts.
pub const MIN_VERSION: u16 = 1;
/// The first version whose clients take `DeliverBatch` frames.
pub const BATCHED_DELIVERIES_SINCE: u16 = 2;
/// The default port.
pub const DEFAULT_PORT: u16 = 5673;
/// The default largest frame (type byte + payload) either side accepts.
pub const DEFAULT_MAX_FRAME: u32 = 8 << 20;
/// Hard upper bound on a negotiated frame size.
pub const MAX_FRAME_LIMIT: u32 = 64 << 20;
/// The largest frame accepted before the handshake completes.
pub const HANDSHAKE_MAX_FRAME: u32 = 64 << 10;
