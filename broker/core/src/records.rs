//! What the broker persists in the metadata trees: vhosts, exchanges,
//! queues and bindings (durable ones only). Arguments are kept in their
//! wire encoding so typed values (integers, booleans…) survive a restart.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use switchyard_protocol::Field;
use switchyard_protocol::wire::{Reader, Wire, Writer};

pub const VHOSTS: &str = "vhosts";
pub const EXCHANGES: &str = "exchanges";
pub const QUEUES: &str = "queues";
pub const BINDINGS: &str = "bindings";
pub const USERS: &str = "users";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VhostRecord {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    pub vhost: String,
    pub name: String,
    /// The plugin implementing the exchange type.
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: EncodedFields,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub vhost: String,
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: EncodedFields,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingRecord {
    pub vhost: String,
    pub exchange: String,
    pub queue: String,
    pub key: String,
    pub arguments: EncodedFields,
}

/// A field table in the wire encoding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EncodedFields(Vec<u8>);

impl EncodedFields {
    pub fn encode(fields: &[Field]) -> Self {
        let mut buf = BytesMut::new();
        fields.to_vec().put(&mut Writer { buf: &mut buf });
        EncodedFields(buf.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn decode(&self) -> Vec<Field> {
        if self.0.is_empty() {
            return Vec::new();
        }
        // Written by `encode`; a damaged record reads as no arguments.
        Vec::<Field>::get(&mut Reader::new(Bytes::from(self.0.clone()))).unwrap_or_default()
    }
}
