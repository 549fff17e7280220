//! Taking messages off queues: skipping (and dead-lettering) expired ones,
//! settling deliveries, enforcing max-length by dropping the head, and
//! republishing dead letters to the queue's dead-letter exchange.

use switchyard_protocol::{Field, Value};

use super::convert::from_stored;
use super::error::BrokerError;
use super::queue::Queue;
use super::{Broker, Vhost};
use switchyard_protocol::Message;
use switchyard_storage::{Delivered, StorageError};

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Back to the queue, delivered again with `redelivered`.
    Requeue,
    /// Dropped, or republished to the dead-letter exchange.
    Reject,
}

/// Dead-lettering stops after this many deaths of one message (a cycle).
const MAX_DEATHS: i64 = 64;

impl Broker {
    /// The next live message of a queue, marked in flight. Expired ones
    /// are dead-lettered on the way; an unreadable (corrupt) one is
    /// reported, dead-lettered as a notice, and skipped: it never ends a
    /// consumer or stalls the queue.
    pub(crate) fn next_delivery(
        &self,
        vhost: &Vhost,
        queue: &Queue,
    ) -> Result<Option<Delivered>, BrokerError> {
        loop {
            let delivered = match self.store.deliver(queue.id) {
                Ok(Some(delivered)) => delivered,
                Ok(None) => return Ok(None),
                Err(StorageError::Corrupt { location, reason }) => {
                    self.skip_corrupt(vhost, queue, &location, &reason);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let message = &delivered.message;
            if !queue
                .settings
                .is_expired(message.expiry_ms, Some(message), self.now_ms())
            {
                return Ok(Some(delivered));
            }
            self.dead_letter(vhost, queue, &delivered, "expired");
            self.store.ack(queue.id, delivered.offset)?;
        }
    }

    /// Settles one delivery of `queue` at `offset`.
    pub fn settle(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        offset: u64,
        how: Settle,
    ) -> Result<(), BrokerError> {
        match how {
            Settle::Ack => {
                self.store.ack(queue.id, offset)?;
            }
            Settle::Requeue => {
                self.store.nack(queue.id, offset, true)?;
                queue.ready.notify_waiters();
            }
            Settle::Reject => {
                if queue.settings.dead_letter_exchange.is_some() {
                    match self.store.read(queue.id, offset) {
                        Ok(message) => {
                            let delivered = Delivered {
                                queue: queue.id,
                                offset,
                                redelivered: false,
                                message,
                            };
                            self.dead_letter(vhost, queue, &delivered, "rejected");
                        }
                        Err(e) => {
                            tracing::warn!(queue = queue.name(), error = %e, "dead letter unreadable")
                        }
                    }
                }
                self.store.nack(queue.id, offset, false)?;
            }
        }
        Ok(())
    }

    /// Returns unsettled deliveries of a departed consumer or channel.
    pub fn release(&self, queue: &Queue, offsets: &[u64]) {
        if let Err(e) = self.store.release(queue.id, offsets) {
            tracing::warn!(queue = queue.name(), error = %e, "releasing deliveries");
        }
        queue.ready.notify_waiters();
    }

    /// Keeps a drop-head queue at `max` ready messages.
    pub(super) fn drop_head(&self, vhost: &Vhost, queue: &Queue, max: u64) {
        while self.store.stats(queue.id).is_ok_and(|s| s.ready > max) {
            match self.store.deliver(queue.id) {
                Ok(Some(delivered)) => {
                    self.dead_letter(vhost, queue, &delivered, "maxlen");
                    let _ = self.store.ack(queue.id, delivered.offset);
                }
                _ => break,
            }
        }
    }

    /// A message the store could not read (the store already settled it):
    /// logged, counted, and — with a dead-letter exchange — announced there
    /// as an empty message with reason `corrupt` and where it was.
    pub(super) fn skip_corrupt(&self, vhost: &Vhost, queue: &Queue, location: &str, reason: &str) {
        queue.count_corrupt();
        tracing::error!(
            queue = queue.name(),
            location,
            reason,
            "corrupt message skipped: it is lost; consumers go on with the next"
        );
        let mut notice = Message::new("", Vec::<u8>::new());
        notice.headers.push(Field::new(
            "x-corrupt-location",
            Value::Text(format!("{location}: {reason}")),
        ));
        self.dead_letter_message(vhost, queue, String::new(), notice, "corrupt");
    }

    /// Republishes a dead message to the queue's dead-letter exchange, with
    /// `x-death-*` headers saying where and why it died.
    pub(super) fn dead_letter(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        delivered: &Delivered,
        reason: &str,
    ) {
        if queue.settings.dead_letter_exchange.is_none() {
            return;
        }
        match from_stored(&delivered.message) {
            Ok((exchange, message)) => {
                self.dead_letter_message(vhost, queue, exchange, message, reason)
            }
            Err(e) => tracing::warn!(queue = queue.name(), error = %e, "dead letter unreadable"),
        }
    }

    fn dead_letter_message(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        exchange: String,
        mut message: Message,
        reason: &str,
    ) {
        let Some(dlx) = &queue.settings.dead_letter_exchange else {
            return;
        };
        let deaths = match switchyard_protocol::find(&message.headers, "x-death-count") {
            Some(Value::Int(n)) => *n + 1,
            _ => 1,
        };
        if deaths > MAX_DEATHS {
            tracing::warn!(
                queue = queue.name(),
                "dead-letter cycle: message dropped after {MAX_DEATHS} deaths"
            );
            return;
        }
        message.headers.retain(|f| !f.name.starts_with("x-death-"));
        message.headers.extend([
            Field::new("x-death-count", Value::Int(deaths)),
            Field::new("x-death-reason", Value::Text(reason.into())),
            Field::new("x-death-queue", Value::Text(queue.name().into())),
            Field::new("x-death-exchange", Value::Text(exchange)),
        ]);
        message.properties.expiration = None;
        if let Some(key) = &queue.settings.dead_letter_routing_key {
            message.routing_key = key.clone();
        }
        for outcome in self.publish_unchecked(vhost, dlx, std::slice::from_ref(&message)) {
            if let super::Outcome::Refused(e) = outcome {
                tracing::warn!(queue = queue.name(), dead_letter_exchange = %dlx, error = %e, "dead letter lost");
            }
        }
    }
}
