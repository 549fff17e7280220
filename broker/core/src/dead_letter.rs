//! How messages die: dropped heads of queues past their max-length,
//! publishes a full `reject-publish-dlx` queue refused, rejections, expiry
//! and corrupt records, each republished to the queue's
//! dead-letter exchange with `x-death-*` headers. A dead letter is itself
//! routed and stored (`routing.rs`) and may take a drop-head queue past its
//! limit in turn: that recursion stays in this file, bounded by
//! `MAX_DEATHS`.

use switchyard_protocol::{Field, Message, Value};

use super::convert::from_stored;
use super::death_history;
use super::delays::{DELAY_HEADER, DELIVER_AT_HEADER};
use super::error::BrokerError;
use super::queue::{Overflow, Queue, QueueSettings};
use super::records::{EncodedFields, QueueRecord};
use super::routing::Aftermath;
use super::{Broker, Vhost};
use switchyard_storage::Delivered;

/// Where a vhost keeps dead letters nobody else would take (see
/// [`Broker::park`]); `list queues` shows it like any queue.
pub const PARKING_QUEUE: &str = "sy.dead-letter-parking";

/// Dead-lettering stops after this many deaths of one message (a cycle).
const MAX_DEATHS: i64 = 64;

impl Broker {
    /// Handles the deaths a stored batch caused: messages a full
    /// `reject-publish-dlx` queue refused are dead-lettered from it, and
    /// each overfull drop-head queue is brought back to its max-length.
    pub(super) fn bury(&self, vhost: &Vhost, aftermath: Aftermath) {
        for (queue, exchange, message) in aftermath.refused {
            self.dead_letter_message(vhost, &queue, exchange, message, "maxlen");
        }
        for queue in aftermath.overfull {
            if let (Some(max), Overflow::DropHead) =
                (queue.settings.max_length, queue.settings.overflow)
            {
                self.drop_head(vhost, &queue, max);
            }
        }
    }

    /// Keeps a drop-head queue at `max` ready messages.
    fn drop_head(&self, vhost: &Vhost, queue: &Queue, max: u64) {
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
        let mut history = death_history::read(&message.headers);
        if death_history::is_automatic_cycle(&history, queue.name(), reason) {
            tracing::warn!(
                queue = queue.name(),
                reason,
                "dead-letter cycle without a rejection: message dropped"
            );
            return;
        }
        let now = self.now_ms();
        death_history::record(
            &mut history,
            death_history::Death {
                queue: queue.name().into(),
                reason: reason.into(),
                count: 1,
                time_first: now,
                time_last: now,
                exchange: exchange.clone(),
                routing_keys: vec![message.routing_key.clone()],
            },
        );
        message
            .headers
            .retain(|f| !f.name.starts_with("x-death-") && f.name != death_history::HEADER);
        message.headers.extend([
            death_history::to_header(&history),
            Field::new("x-death-count", Value::Int(deaths)),
            Field::new("x-death-reason", Value::Text(reason.into())),
            Field::new("x-death-queue", Value::Text(queue.name().into())),
            Field::new("x-death-exchange", Value::Text(exchange)),
        ]);
        // A dead letter is not expired or delayed again by what it carried.
        message.properties.expiration = None;
        message
            .headers
            .retain(|f| f.name != DELAY_HEADER && f.name != DELIVER_AT_HEADER);
        if let Some(key) = &queue.settings.dead_letter_routing_key {
            message.routing_key = key.clone();
        }
        let mut aftermath = Aftermath::default();
        let outcomes =
            self.publish_unchecked(vhost, dlx, std::slice::from_ref(&message), &mut aftermath);
        for outcome in outcomes {
            if let super::Outcome::Refused(e) = outcome {
                self.park(vhost, queue, dlx, &e, message.clone());
            }
        }
        self.bury(vhost, aftermath);
    }

    /// A dead letter its dead-letter exchange refused (missing, its plugin
    /// failed or refused): kept in the queue's `dead-letter-fallback`, else
    /// in the vhost's parking queue ([`PARKING_QUEUE`], created when first
    /// needed), never lost. One line says where it went and why.
    fn park(&self, vhost: &Vhost, queue: &Queue, dlx: &str, cause: &BrokerError, message: Message) {
        let fallback = queue
            .settings
            .dead_letter_fallback
            .as_deref()
            .filter(|name| vhost.queue(name).is_ok());
        let target = match fallback {
            Some(name) => name.to_string(),
            None => match self.parking_queue(vhost) {
                Ok(name) => name,
                Err(e) => {
                    tracing::error!(queue = queue.name(), dead_letter_exchange = %dlx, cause = %cause, error = %e, "dead letter lost: no parking queue");
                    return;
                }
            },
        };
        tracing::warn!(
            queue = queue.name(),
            dead_letter_exchange = %dlx,
            cause = %cause,
            kept_in = %target,
            "the dead-letter exchange refused a dead letter; kept in the fallback queue"
        );
        let mut parked = message;
        parked.routing_key = target.clone();
        let mut aftermath = Aftermath::default();
        for outcome in self.publish_unchecked(vhost, "", &[parked], &mut aftermath) {
            if let super::Outcome::Refused(e) = outcome {
                tracing::error!(queue = queue.name(), kept_in = %target, error = %e, "dead letter lost: its fallback queue refused it");
            }
        }
        self.bury(vhost, aftermath);
    }

    /// The vhost's parking queue, created (durable) if it does not exist.
    fn parking_queue(&self, vhost: &Vhost) -> Result<String, BrokerError> {
        if vhost.queue(PARKING_QUEUE).is_err() {
            let record = QueueRecord {
                vhost: vhost.name.clone(),
                name: PARKING_QUEUE.into(),
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: EncodedFields::encode(&[]),
            };
            let settings = QueueSettings::parse(&[])?;
            self.create_queue(vhost, record, settings, None)?;
        }
        Ok(PARKING_QUEUE.into())
    }
}
