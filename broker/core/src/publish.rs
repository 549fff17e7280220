//! Publishing by a client: authorize the batch (here, so that every front
//! door applies the same rule), route and store it (`routing.rs`), then
//! drop (and dead-letter) the heads of drop-head queues it took past their
//! max-length (`dead_letter.rs`).

use switchyard_protocol::Message;

use super::Broker;
use super::auth::{Access, Principal};
use super::error::BrokerError;
use super::header_limits::publish_within_limits;
use super::reserved_headers::without_reserved;
use super::routing::Aftermath;

/// What became of one published message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Appended. Bound for a sync-flush queue, it may be confirmed only
    /// once durable: [`Broker::wait_durable`] on `durable_after`.
    Stored { durable_after: Option<DurableAt> },
    /// Stored here for another cell, whose broker must confirm it before
    /// its publisher is (`confirm = remote`): [`Broker::wait_forwarded`].
    Forwarding { cell: String, offset: u64 },
    /// No queue received it.
    Unroutable,
    /// The exchange's filter said it was already published: confirmed,
    /// not stored again.
    Duplicate,
    /// Refused (plugin refusal or failure, full queue, full disk…).
    Refused(BrokerError),
}

/// A point in the broker's durable history: a message stored before it is
/// durable once the broker has made this point durable. Opaque to front
/// doors; later points cover earlier ones (`max` of several is enough).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurableAt(pub(crate) u64);

impl DurableAt {
    /// A point made up for the tests of front doors (their confirm
    /// bookkeeping); meaningless to the store.
    #[doc(hidden)]
    pub fn for_tests(position: u64) -> Self {
        DurableAt(position)
    }
}

/// What became of a batch published by a client.
#[derive(Debug)]
pub struct Published {
    /// One per message of the batch, up to (not including) the first one
    /// `stopped` refers to.
    pub outcomes: Vec<Outcome>,
    /// Why the batch stopped early: no such exchange (404) or no write
    /// permission (403). The rest of the batch is not published and, as in
    /// AMQP, the channel closes with this error.
    pub stopped: Option<BrokerError>,
}

impl Broker {
    /// Blocks until everything stored before `point` is durable (one
    /// flush serves every waiter: group commit); an error if flushing
    /// failed (the messages may not be durable: refuse their confirms).
    pub fn wait_durable(&self, point: DurableAt) -> Result<(), BrokerError> {
        Ok(self.store.wait_durable(point.0)?)
    }

    /// [`Broker::wait_durable`] for async callers: no thread waits.
    pub async fn durable(&self, point: DurableAt) -> Result<(), BrokerError> {
        Ok(self.store.durable(point.0).await?)
    }

    /// Publishes `messages` to `exchange` as `principal`. A named exchange
    /// needs write permission on the exchange; the default exchange ("")
    /// needs write permission on the queue each message's routing key
    /// names (what it would reach), so tenants' queues stay apart
    /// (docs/SECURITY.md). Messages before the first refused one are
    /// published; none after it.
    pub fn publish(
        &self,
        principal: &Principal,
        exchange: &str,
        messages: &[Message],
    ) -> Published {
        let forwarded = Broker::is_forwarded(principal, messages);
        let allowed = self
            .authorize_publish(principal, exchange, messages)
            .and_then(|()| match forwarded {
                true => Broker::authorize_forwarded(principal, messages),
                false => Ok(()),
            });
        let (count, stopped) = match allowed {
            Ok(()) => (messages.len(), None),
            Err((count, e)) => (count, Some(e)),
        };
        let outcomes = match self.vhost(&principal.vhost) {
            Ok(vhost) if count > 0 => {
                let mut aftermath = Aftermath::default();
                let messages = &messages[..count];
                let outcomes = match forwarded {
                    true => {
                        self.publish_unchecked_forwarded(&vhost, exchange, messages, &mut aftermath)
                    }
                    false => {
                        let messages = without_reserved(messages);
                        publish_within_limits(&messages, |messages| {
                            self.publish_unchecked(&vhost, exchange, messages, &mut aftermath)
                        })
                    }
                };
                self.bury(&vhost, aftermath);
                outcomes
            }
            _ => Vec::new(),
        };
        Published { outcomes, stopped }
    }

    /// How many leading messages `principal` may publish, and why not the
    /// next one.
    pub(crate) fn authorize_publish(
        &self,
        principal: &Principal,
        exchange: &str,
        messages: &[Message],
    ) -> Result<(), (usize, BrokerError)> {
        let x = self
            .vhost(&principal.vhost)
            .and_then(|vhost| vhost.exchange(exchange))
            .map_err(|e| (0, e))?;
        if !x.is_default() {
            return principal
                .check(Access::Write, "exchange", exchange)
                .map_err(|e| (0, e));
        }
        // A batch usually names one queue throughout: a key just allowed
        // is not matched against the permission patterns again.
        let mut allowed: Option<&str> = None;
        for (i, message) in messages.iter().enumerate() {
            if allowed == Some(message.routing_key.as_str()) {
                continue;
            }
            allowed = Some(&message.routing_key);
            principal
                .check(Access::Write, "queue", &message.routing_key)
                .map_err(|e| {
                    let e = BrokerError::access_refused(format!(
                        "{e} (publishing through the default exchange needs write permission on \
                         the queue the routing key names)"
                    ));
                    (i, e)
                })?;
        }
        Ok(())
    }
}
