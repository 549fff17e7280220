//! How messages die: dropped heads of queues past their max-length,
//! publishes a full `reject-publish-dlx` queue refused, rejections, expiry,
//! the delivery limit and corrupt records. This file collects the deaths —
//! several at once where they happen together (a drop-head burst, expired
//! heads, `nack multiple`) — and hands each batch to the queue's
//! dead-letter policy (`dead_letter_policy.rs`). A dead letter is itself
//! routed and stored (`routing.rs`) and may take a drop-head queue past
//! its limit in turn: that recursion stays in these two files, bounded by
//! the death count a message carries.

use std::sync::Arc;

use switchyard_protocol::{Field, Message, Value};

use super::convert::from_stored;
use super::queue::{Overflow, Queue};
use super::routing::Aftermath;
use super::{Broker, Vhost};
use switchyard_plugin_host::DeathReason;
use switchyard_storage::Delivered;

/// Where a vhost keeps dead letters nobody else would take (see
/// `Broker::park`); `list queues` shows it like any queue.
pub const PARKING_QUEUE: &str = "sy.dead-letter-parking";

/// A message that died: the exchange it had been published to, and itself.
pub(crate) struct Corpse {
    pub exchange: String,
    pub message: Message,
}

/// How a reason is spelled in death histories (`x-death`), as RabbitMQ does.
pub(crate) fn reason_name(reason: DeathReason) -> &'static str {
    match reason {
        DeathReason::Rejected => "rejected",
        DeathReason::Expired => "expired",
        DeathReason::MaxLength => "maxlen",
        DeathReason::DeliveryLimit => "delivery_limit",
    }
}

impl Broker {
    /// Handles the deaths a stored batch caused: messages a full
    /// `reject-publish-dlx` queue refused are dead-lettered from it, and
    /// each overfull drop-head queue is brought back within its limits.
    pub(super) fn bury(&self, vhost: &Vhost, aftermath: Aftermath) {
        let mut refused = aftermath.refused;
        while let Some((queue, _, _)) = refused.first() {
            let queue = queue.clone();
            let (same, rest): (Vec<_>, Vec<_>) =
                refused.into_iter().partition(|(q, _, _)| q.id == queue.id);
            refused = rest;
            let corpses = same
                .into_iter()
                .map(|(_, exchange, message)| Corpse { exchange, message })
                .collect();
            self.dead_letter_batch(vhost, &queue, DeathReason::MaxLength, corpses);
        }
        for queue in aftermath.overfull {
            if queue.settings.overflow == Overflow::DropHead && queue.settings.has_limits() {
                self.drop_head(vhost, &queue);
            }
        }
    }

    /// Keeps a drop-head queue within its max-length and max-length-bytes.
    fn drop_head(&self, vhost: &Vhost, queue: &Arc<Queue>) {
        let mut dropped = Vec::new();
        while self
            .store
            .stats(queue.id)
            .is_ok_and(|s| queue.settings.is_over(&s))
        {
            // Taken (in flight, no longer ready), settled once buried.
            match self.store.deliver(queue.id) {
                Ok(Some(delivered)) => dropped.push(delivered),
                _ => break,
            }
        }
        self.dead_letter_all(vhost, queue, &dropped, DeathReason::MaxLength);
        for delivered in dropped {
            let _ = self.store.ack(queue.id, delivered.offset);
        }
    }

    /// A message the store could not read (the store already settled it):
    /// logged, counted, and — with a dead-letter exchange — announced there
    /// as an empty message with reason `corrupt` and where it was. No
    /// policy is asked: there is no message to decide about.
    pub(super) fn skip_corrupt(&self, vhost: &Vhost, queue: &Queue, location: &str, reason: &str) {
        queue.count_corrupt();
        tracing::error!(
            queue = queue.name(),
            location,
            reason,
            "corrupt message skipped: it is lost; consumers go on with the next"
        );
        let Some(dlx) = &queue.settings.dead_letter_exchange else {
            return;
        };
        let mut notice = Message::new(queue.name(), Vec::<u8>::new());
        notice.headers.extend([
            Field::new(
                "x-corrupt-location",
                Value::Text(format!("{location}: {reason}")),
            ),
            Field::new("x-death-reason", Value::Text("corrupt".into())),
            Field::new("x-death-queue", Value::Text(queue.name().into())),
        ]);
        self.republish(vhost, queue, vec![(dlx.clone(), notice)]);
    }

    /// Dead-letters one message taken off `queue`.
    pub(super) fn dead_letter(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        delivered: &Delivered,
        reason: DeathReason,
    ) {
        self.dead_letter_all(vhost, queue, std::slice::from_ref(delivered), reason);
    }

    /// Dead-letters messages taken off `queue` that died together.
    pub(super) fn dead_letter_all(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        delivered: &[Delivered],
        reason: DeathReason,
    ) {
        if delivered.is_empty() || !queue.settings.dead_letters() {
            return;
        }
        queue.counters.dead_lettered(delivered.len() as u64);
        let corpses = delivered
            .iter()
            .filter_map(|d| match from_stored(&d.message) {
                Ok((exchange, message)) => Some(Corpse { exchange, message }),
                Err(e) => {
                    tracing::warn!(queue = queue.name(), error = %e, "dead letter unreadable");
                    None
                }
            })
            .collect();
        self.dead_letter_batch(vhost, queue, reason, corpses);
    }
}
