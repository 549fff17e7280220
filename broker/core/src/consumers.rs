//! Who may take messages off a queue: read permission, the exclusive
//! owner, the consumer limits. Front doors call these and only translate.

use std::sync::Arc;

use super::auth::{Access, Principal};
use super::error::BrokerError;
use super::handout::{AckMode, Delivery};
use super::queue::Queue;
use super::{Broker, Vhost};

/// What a `get` took.
pub struct Got {
    /// The queue it came from (settled against it).
    pub queue: Arc<Queue>,
    pub delivery: Delivery,
    /// Ready messages left behind it.
    pub remaining: u64,
}

impl Broker {
    /// Registers consumer `tag` of `connection` on `queue` for
    /// `principal`, which already runs `consumers_on_channel` consumers on
    /// its channel; the queue to take messages from.
    pub fn start_consumer(
        &self,
        principal: &Principal,
        connection: u64,
        queue: &str,
        tag: &str,
        exclusive: bool,
        consumers_on_channel: usize,
    ) -> Result<Arc<Queue>, BrokerError> {
        principal.check(Access::Read, "queue", queue)?;
        self.limits.check_consumers(consumers_on_channel)?;
        let q = self.vhost(&principal.vhost)?.queue(queue)?;
        q.check_owner(connection)?;
        q.add_consumer(tag, connection, exclusive)?;
        q.touch(self.now_ms());
        Ok(q)
    }

    /// One message of `queue` for `principal` on `connection` (a `get`).
    pub fn get(
        &self,
        principal: &Principal,
        connection: u64,
        queue: &str,
        ack: AckMode,
    ) -> Result<Option<Got>, BrokerError> {
        principal.check(Access::Read, "queue", queue)?;
        let vhost = self.vhost(&principal.vhost)?;
        let q = vhost.queue(queue)?;
        q.check_owner(connection)?;
        q.touch(self.now_ms());
        let Some(delivery) = self.take_delivery(&vhost, &q, ack)? else {
            return Ok(None);
        };
        let remaining = self.queue_stats(&q)?.ready;
        Ok(Some(Got {
            queue: q,
            delivery,
            remaining,
        }))
    }

    /// A consumer of `queue` ended (cancelled, or its channel closed):
    /// an auto-delete queue whose last consumer this was is deleted.
    pub fn end_consumer(&self, vhost: &Vhost, queue: &Queue, tag: &str) {
        // Its `expires` lease starts when its last consumer leaves.
        queue.touch(self.now_ms());
        if queue.remove_consumer(tag)
            && let Err(e) = self.remove_queue(vhost, queue.name())
        {
            tracing::warn!(queue = queue.name(), error = %e, "auto-delete failed");
        }
    }
}
