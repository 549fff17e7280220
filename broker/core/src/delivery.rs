//! Taking messages off queues: skipping (and dead-lettering) expired ones,
//! and settling deliveries (ack, requeue, reject).

use super::error::BrokerError;
use super::queue::Queue;
use super::{Broker, Vhost};
use switchyard_plugin_host::DeathReason;
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
            self.dead_letter(vhost, queue, &delivered, DeathReason::Expired);
            self.store.ack(queue.id, delivered.offset)?;
        }
    }

    /// Settles deliveries of `queue` (one, or several of a `multiple`
    /// settle: rejected ones die together, one policy call).
    pub fn settle(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        offsets: &[u64],
        how: Settle,
    ) -> Result<(), BrokerError> {
        match how {
            Settle::Ack => {
                self.store.ack_many(queue.id, offsets)?;
                queue.counters.acked(offsets.len() as u64);
            }
            Settle::Requeue => {
                let dying = self.reaching_limit(queue, offsets)?;
                for &offset in offsets.iter().filter(|o| !dying.contains(o)) {
                    self.store.nack(queue.id, offset, true)?;
                }
                self.die(vhost, queue, &dying, DeathReason::DeliveryLimit)?;
                queue.ready.notify_waiters();
            }
            Settle::Reject => self.die(vhost, queue, offsets, DeathReason::Rejected)?,
        }
        Ok(())
    }

    /// The deliveries among `offsets` whose return now would take them past
    /// the queue's `delivery-limit`: they die instead of coming back. As
    /// RabbitMQ's `x-delivery-limit`, the limit is the number of
    /// redeliveries allowed: with 3, a message is delivered up to 4 times
    /// and dies at its 4th return.
    fn reaching_limit(&self, queue: &Queue, offsets: &[u64]) -> Result<Vec<u64>, BrokerError> {
        let Some(limit) = queue.settings.delivery_limit else {
            return Ok(Vec::new());
        };
        let mut dying = Vec::new();
        for &offset in offsets {
            if u64::from(self.store.returns(queue.id, offset)?) + 1 > limit {
                dying.push(offset);
            }
        }
        Ok(dying)
    }

    /// Dead-letters deliveries of `queue` (together: one policy call) and
    /// settles them.
    fn die(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        offsets: &[u64],
        reason: DeathReason,
    ) -> Result<(), BrokerError> {
        if queue.settings.dead_letters() {
            let dead: Vec<Delivered> = offsets
                .iter()
                .filter_map(|&offset| match self.store.read(queue.id, offset) {
                    Ok(message) => Some(Delivered {
                        queue: queue.id,
                        offset,
                        redelivered: false,
                        message,
                    }),
                    Err(e) => {
                        tracing::warn!(queue = queue.name(), error = %e, "dead letter unreadable");
                        None
                    }
                })
                .collect();
            self.dead_letter_all(vhost, queue, &dead, reason);
        }
        for &offset in offsets {
            self.store.nack(queue.id, offset, false)?;
        }
        Ok(())
    }

    /// Returns unsettled deliveries of a departed consumer or channel; those
    /// reaching the queue's delivery limit die instead.
    pub fn release(&self, queue: &Queue, offsets: &[u64]) {
        let released = self.reaching_limit(queue, offsets).and_then(|dying| {
            let back: Vec<u64> = offsets
                .iter()
                .copied()
                .filter(|o| !dying.contains(o))
                .collect();
            self.store.release(queue.id, &back)?;
            if !dying.is_empty() {
                let vhost = self.vhost(&queue.record.vhost)?;
                self.die(&vhost, queue, &dying, DeathReason::DeliveryLimit)?;
            }
            Ok(())
        });
        if let Err(e) = released {
            tracing::warn!(queue = queue.name(), error = %e, "releasing deliveries");
        }
        queue.ready.notify_waiters();
    }
}
