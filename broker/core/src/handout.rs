//! Handing messages out to consumers and `get`: the next live message of a
//! queue, decoded for the wire, settled at once when the consumer does not
//! acknowledge. Front doors receive [`Delivery`] values and never see the
//! store or its records.

use switchyard_protocol::{Field, Message, Value};

use super::convert::from_stored;
use super::error::BrokerError;
use super::queue::Queue;
use super::stream::STREAM_OFFSET_HEADER;
use super::{Broker, Vhost};
use switchyard_storage::QueueStats;

/// A message handed to a consumer or a `get`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its place in the queue: what the consumer settles.
    pub offset: u64,
    /// It may have been handed out before (docs/PROTOCOL.md, "What
    /// redelivered means").
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: String,
    pub message: Message,
}

/// Whether the consumer acknowledges what it is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Settled by the consumer (ack, nack, reject) or returned to the
    /// queue when it goes away.
    Manual,
    /// The broker forgets the message as it hands it out.
    Auto,
}

impl AckMode {
    /// From a protocol's `auto_ack` / `no_ack` flag.
    pub fn from_auto_ack(auto_ack: bool) -> Self {
        if auto_ack {
            AckMode::Auto
        } else {
            AckMode::Manual
        }
    }
}

impl Broker {
    /// The next live message of `queue`, marked in flight (or, with
    /// [`AckMode::Auto`], settled). Expired and corrupt messages are
    /// dead-lettered on the way (see [`Broker::next_delivery`]); a record
    /// whose attributes cannot be decoded is logged, settled and skipped,
    /// so it cannot block the queue.
    pub fn take_delivery(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        ack: AckMode,
    ) -> Result<Option<Delivery>, BrokerError> {
        while let Some(delivered) = self.next_delivery(vhost, queue)? {
            match from_stored(&delivered.message) {
                Ok((exchange, mut message)) => {
                    if queue.view_of.is_some() {
                        message.headers.push(Field::new(
                            STREAM_OFFSET_HEADER,
                            Value::Int(delivered.offset as i64),
                        ));
                    }
                    queue.counters.delivered(delivered.redelivered);
                    if ack == AckMode::Auto {
                        queue.counters.acked(1);
                        self.store.ack(queue.id, delivered.offset)?;
                    }
                    return Ok(Some(Delivery {
                        offset: delivered.offset,
                        redelivered: delivered.redelivered,
                        exchange,
                        message,
                    }));
                }
                Err(e) => {
                    tracing::error!(
                        queue = queue.name(),
                        offset = delivered.offset,
                        error = %e,
                        "undeliverable record dropped"
                    );
                    self.store.ack(queue.id, delivered.offset)?;
                }
            }
        }
        Ok(None)
    }

    /// A queue's counters: ready, unacknowledged, stored.
    pub fn queue_stats(&self, queue: &Queue) -> Result<QueueStats, BrokerError> {
        Ok(self.store.stats(queue.id)?)
    }
}
