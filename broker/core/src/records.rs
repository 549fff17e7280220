//! What the broker persists in the metadata trees: vhosts, exchanges,
//! queues and bindings (durable ones only). Arguments are kept in their
//! wire encoding so typed values (integers, booleans…) survive a restart.

use super::error::BrokerError;
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

/// Arguments a queue, exchange or binding may carry: a client gave 5
/// queues 100,000 arguments each (213 MB of metadata, a 35.6 MB listing).
pub const MAX_ARGUMENTS: usize = 128;
/// Their encoded size together.
pub const MAX_ARGUMENT_BYTES: usize = 64 << 10;

impl EncodedFields {
    pub fn encode(fields: &[Field]) -> Self {
        let mut buf = BytesMut::new();
        fields.to_vec().put(&mut Writer { buf: &mut buf });
        EncodedFields(buf.to_vec())
    }

    /// `fields` encoded, if within [`MAX_ARGUMENTS`] and
    /// [`MAX_ARGUMENT_BYTES`]; else a refusal naming `what` they are of.
    pub fn bounded(fields: &[Field], what: &str) -> Result<Self, BrokerError> {
        if fields.len() > MAX_ARGUMENTS {
            return Err(BrokerError::invalid_argument(format!(
                "{what} has {} arguments; at most {MAX_ARGUMENTS} are allowed",
                fields.len()
            )));
        }
        let encoded = EncodedFields::encode(fields);
        if encoded.0.len() > MAX_ARGUMENT_BYTES {
            return Err(BrokerError::invalid_argument(format!(
                "{what}'s arguments take {} bytes; at most {MAX_ARGUMENT_BYTES} are allowed",
                encoded.0.len()
            )));
        }
        Ok(encoded)
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
