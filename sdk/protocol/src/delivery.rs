//! A delivery inside a [`crate::Frame::DeliverBatch`]: what a `Deliver`
//! frame carries but the consumer tag and the delivery tag, which the
//! batch gives once (tags are consecutive from its first).

use crate::error::DecodeError;
use crate::types::Message;
use crate::wire::{Reader, Wire, Writer};

#[derive(Debug, Clone, PartialEq)]
pub struct BatchedDelivery {
    /// It may have been handed out before (docs/PROTOCOL.md).
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: String,
    pub message: Message,
}

impl Wire for BatchedDelivery {
    fn put(&self, w: &mut Writer<'_>) {
        w.bool(self.redelivered);
        w.short_str(&self.exchange);
        self.message.put(w);
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(BatchedDelivery {
            redelivered: r.bool()?,
            exchange: r.short_str()?,
            message: Message::get(r)?,
        })
    }
}
