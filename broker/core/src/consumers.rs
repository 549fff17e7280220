//! Who may take messages off a queue: read permission, the exclusive
//! owner, the consumer limits. Front doors call these and only translate.

use std::sync::Arc;

use super::auth::{Access, Principal};
use super::error::BrokerError;
use super::groups::Subscription;
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

/// A consumer to start.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSpec<'a> {
    pub queue: &'a str,
    pub tag: &'a str,
    pub exclusive: bool,
    /// Stream queues: the group (or offset) to consume at.
    pub subscription: Option<&'a Subscription>,
}

impl<'a> ConsumerSpec<'a> {
    /// A consumer of `queue` (not exclusive; a stream's at its next message).
    pub fn new(queue: &'a str, tag: &'a str) -> Self {
        ConsumerSpec {
            queue,
            tag,
            exclusive: false,
            subscription: None,
        }
    }
}

impl Broker {
    /// Registers consumer `tag` of `connection` on `queue` for
    /// `principal`, which already runs `consumers_on_channel` consumers on
    /// its channel; the queue to take messages from — for a stream, the
    /// view `subscription` names (without one: a position of its own,
    /// starting at the next message).
    pub fn start_consumer(
        &self,
        principal: &Principal,
        connection: u64,
        consumer: ConsumerSpec<'_>,
        consumers_on_channel: usize,
    ) -> Result<Arc<Queue>, BrokerError> {
        let ConsumerSpec {
            queue,
            tag,
            exclusive,
            subscription,
        } = consumer;
        principal.check(Access::Read, "queue", queue)?;
        self.limits.check_consumers(consumers_on_channel)?;
        let q = self.vhost(&principal.vhost)?.queue(queue)?;
        q.check_owner(connection)?;
        q.touch(self.now_ms());
        if q.is_stream() {
            let default = Subscription::default();
            return self.subscribe(
                &q,
                connection,
                tag,
                exclusive,
                subscription.unwrap_or(&default),
            );
        }
        if subscription.is_some_and(|s| s.group.is_some() || s.offset != Default::default()) {
            return Err(BrokerError::precondition(format!(
                "queue '{queue}' is not a stream: consumer groups and offsets need a queue                  declared with queue-type = stream"
            )));
        }
        q.add_consumer(tag, connection, exclusive)?;
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
        q.refuse_if_stream("get")?;
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
    pub fn end_consumer(&self, vhost: &Vhost, queue: &Arc<Queue>, tag: &str) {
        if queue.view_of.is_some() {
            return self.end_view_consumer(vhost, queue, tag);
        }
        // Its `expires` lease starts when its last consumer leaves.
        queue.touch(self.now_ms());
        if queue.remove_consumer(tag)
            && let Err(e) = self.remove_queue(vhost, queue.name())
        {
            tracing::warn!(queue = queue.name(), error = %e, "auto-delete failed");
        }
    }
}
