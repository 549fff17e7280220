//! Message TTL: a message dies when its own `expiration` or its queue's
//! `message-ttl` has passed (the earlier wins). Expired messages are taken
//! off the head of their queue proactively — by a sweeper thread, and by
//! every delivery on the way — and dead-lettered with reason `expired`, so
//! `list queues` and dead-letter queues are right without a consumer.
//!
//! As in RabbitMQ, only heads are expired proactively: an expired message
//! behind a live one (possible with per-message `expiration`) stays counted
//! as ready until it reaches the head, and is never delivered.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::queue::{Queue, QueueSettings};
use super::{Broker, Vhost};
use switchyard_plugin_host::DeathReason;
use switchyard_storage::{Delivered, IndexEntry, StorageError, StoredMessage};

/// How often the sweeper looks at every queue's head: expired heads leave
/// their queue at most this long after their deadline.
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// Expired messages dead-lettered together (one policy call).
const EXPIRY_BATCH: usize = 256;

impl QueueSettings {
    /// Whether a message of this queue is dead at `now`. `message` is
    /// needed only with a queue TTL (the index entry carries `expiration`).
    pub(super) fn is_expired(
        &self,
        entry_expiry_ms: u64,
        message: Option<&StoredMessage>,
        now: u64,
    ) -> bool {
        let own = entry_expiry_ms != 0 && entry_expiry_ms <= now;
        let by_queue = match (self.message_ttl_ms, message) {
            (Some(ttl), Some(message)) => message.publish_ms.saturating_add(ttl) <= now,
            _ => false,
        };
        own || by_queue
    }
}

impl Broker {
    /// Dead-letters the expired messages at the head of `queue`; returns
    /// how many.
    pub fn expire_head(&self, vhost: &Vhost, queue: &Queue) -> u64 {
        let needs_message = queue.settings.message_ttl_ms.is_some();
        let mut expired = Vec::new();
        let mut total = 0;
        loop {
            let now = self.now_ms();
            let taken = self.store.take_expired_head(
                queue.id,
                needs_message,
                |entry: &IndexEntry, message| {
                    queue.settings.is_expired(entry.expiry_ms, message, now)
                },
            );
            match taken {
                Ok(Some(delivered)) => {
                    expired.push(delivered);
                    // Dead-lettered together, in batches the policy decides
                    // in one call.
                    if expired.len() >= EXPIRY_BATCH {
                        total += self.bury_expired(vhost, queue, &mut expired);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(StorageError::Corrupt { location, reason }) => {
                    self.skip_corrupt(vhost, queue, &location, &reason);
                    continue;
                }
                Err(e) => {
                    if !queue.is_deleted() {
                        tracing::warn!(queue = queue.name(), error = %e, "expiring the head");
                    }
                }
            }
            return total + self.bury_expired(vhost, queue, &mut expired);
        }
    }

    /// Dead-letters expired messages taken off `queue`, then settles them
    /// (in that order: a crash in between delivers a dead letter twice
    /// rather than losing it); returns how many.
    fn bury_expired(&self, vhost: &Vhost, queue: &Queue, expired: &mut Vec<Delivered>) -> u64 {
        self.dead_letter_all(vhost, queue, expired, DeathReason::Expired);
        for delivered in expired.iter() {
            if let Err(e) = self.store.ack(queue.id, delivered.offset) {
                tracing::warn!(queue = queue.name(), error = %e, "settling an expired message");
            }
        }
        let count = expired.len() as u64;
        expired.clear();
        count
    }

    /// One sweep over every queue of every vhost; returns how many
    /// messages expired.
    pub fn expire_due(&self) -> u64 {
        let vhosts: Vec<Arc<Vhost>> = self.vhosts.read().unwrap().values().cloned().collect();
        let mut expired = 0;
        for vhost in vhosts {
            let queues: Vec<Arc<Queue>> = vhost.queues.read().unwrap().values().cloned().collect();
            for queue in queues {
                expired += self.expire_head(&vhost, &queue);
            }
        }
        expired
    }

    /// Starts the sweeper thread; it ends when the broker is dropped.
    pub fn start_expiry_sweeper(self: &Arc<Self>) -> std::io::Result<()> {
        let broker: Weak<Broker> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("expiry-sweeper".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EXPIRY_SWEEP_INTERVAL);
                    let Some(broker) = broker.upgrade() else {
                        return;
                    };
                    broker.expire_due();
                    broker.expire_unused_queues();
                    broker.apply_retention();
                }
            })
            .map(|_| ())
    }
}
