//! Publishing: authorize the batch (here, so that every front door applies
//! the same rule), check it with the exchange's filter plugin (if it has
//! one), route what passed through the exchange's plugin with one call,
//! then append each routed message to the commit log once, whatever the
//! number of queues it goes to.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_protocol::{Message, code};

use super::auth::{Access, Principal};
use super::convert::{message_to_plugin, to_stored};
use super::error::BrokerError;
use super::exchange::Exchange;
use super::queue::{Overflow, Queue};
use super::{Broker, Vhost};
use switchyard_plugin_host::Verdict;
use switchyard_storage::QueueId;

/// What became of one published message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Appended. Bound for a sync-flush queue, it may be confirmed only
    /// once durable: [`Broker::wait_durable`] on `durable_after`.
    Stored { durable_after: Option<DurableAt> },
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
pub struct DurableAt(u64);

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
        let allowed = self.authorize_publish(principal, exchange, messages);
        let (count, stopped) = match allowed {
            Ok(()) => (messages.len(), None),
            Err((count, e)) => (count, Some(e)),
        };
        let outcomes = match self.vhost(&principal.vhost) {
            Ok(vhost) if count > 0 => self.publish_unchecked(&vhost, exchange, &messages[..count]),
            _ => Vec::new(),
        };
        Published { outcomes, stopped }
    }

    /// How many leading messages `principal` may publish, and why not the
    /// next one.
    fn authorize_publish(
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
        for (i, message) in messages.iter().enumerate() {
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

    /// Routes and stores messages published to `exchange`, without asking
    /// whose they are: for the broker's own republishing (dead letters).
    pub(crate) fn publish_unchecked(
        &self,
        vhost: &Vhost,
        exchange: &str,
        messages: &[Message],
    ) -> Vec<Outcome> {
        let exchange = match vhost.exchange(exchange) {
            Ok(exchange) => exchange,
            Err(e) => return vec![Outcome::Refused(e); messages.len()],
        };
        let Some(filter) = &exchange.filter else {
            return self.route_and_store(vhost, &exchange, messages);
        };
        let plugin_messages: Vec<_> = messages.iter().map(message_to_plugin).collect();
        let bodies: Vec<Bytes> = messages.iter().map(|m| m.body.clone()).collect();
        let verdicts = match filter.check_batch(&plugin_messages, &bodies) {
            Ok(verdicts) => verdicts,
            Err(e) => return vec![Outcome::Refused(e.into()); messages.len()],
        };
        let passed: Vec<Message> = messages
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| matches!(v, Verdict::Accept))
            .map(|(m, _)| m.clone())
            .collect();
        let mut stored = self.route_and_store(vhost, &exchange, &passed).into_iter();
        verdicts
            .into_iter()
            .map(|verdict| match verdict {
                Verdict::Accept => stored.next().expect("one outcome per accepted message"),
                Verdict::Duplicate => Outcome::Duplicate,
                Verdict::Reject(reason) => Outcome::Refused(BrokerError::new(
                    code::PLUGIN_ERROR,
                    format!(
                        "filter {} of exchange '{}' rejected the message: {reason}",
                        filter.plugin().active().label(),
                        exchange.name()
                    ),
                )),
            })
            .collect()
    }

    fn route_and_store(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        messages: &[Message],
    ) -> Vec<Outcome> {
        let routes = self.route(vhost, exchange, messages);
        let now = self.now_ms();
        messages
            .iter()
            .zip(routes)
            .map(|(message, route)| match route {
                Ok(queues) => self.store_routed(vhost, exchange.name(), message, &queues, now),
                Err(e) => Outcome::Refused(e),
            })
            .collect()
    }

    /// The queues each message goes to.
    fn route(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        messages: &[Message],
    ) -> Vec<Result<Vec<Arc<Queue>>, BrokerError>> {
        let Some(router) = &exchange.router else {
            return messages
                .iter()
                .map(|m| Ok(vhost.queue(&m.routing_key).into_iter().collect()))
                .collect();
        };
        let plugin_messages: Vec<_> = messages.iter().map(message_to_plugin).collect();
        let bodies: Vec<Bytes> = messages.iter().map(|m| m.body.clone()).collect();
        let routed = match router.route_batch(&plugin_messages, &bodies) {
            Ok(routed) => routed,
            Err(e) => {
                let error = BrokerError::from(e);
                return vec![Err(error); messages.len()];
            }
        };
        let queues = vhost.queues.read().unwrap();
        routed
            .results
            .into_iter()
            .map(|result| match result {
                Ok(targets) => {
                    let mut names: Vec<&str> = targets
                        .iter()
                        .map(|&i| routed.table.bindings[i as usize].destination.as_str())
                        .collect();
                    names.sort_unstable();
                    names.dedup();
                    Ok(names
                        .into_iter()
                        .filter_map(|n| queues.get(n).cloned())
                        .collect())
                }
                Err(reason) => Err(BrokerError::new(
                    code::PLUGIN_ERROR,
                    format!(
                        "exchange '{}' ({} {}) refused the message: {reason}",
                        exchange.name(),
                        routed.version.label(),
                        exchange.record.kind
                    ),
                )),
            })
            .collect()
    }

    fn store_routed(
        &self,
        vhost: &Vhost,
        exchange: &str,
        message: &Message,
        queues: &[Arc<Queue>],
        now: u64,
    ) -> Outcome {
        let mut ids: Vec<QueueId> = Vec::with_capacity(queues.len());
        let mut full = None;
        for queue in queues {
            if let (Some(max), Overflow::RejectPublish) =
                (queue.settings.max_length, queue.settings.overflow)
                && self.store.stats(queue.id).is_ok_and(|s| s.ready >= max)
            {
                full = Some(queue.name().to_string());
                continue;
            }
            ids.push(queue.id);
        }
        if ids.is_empty() {
            return match full {
                Some(name) => Outcome::Refused(BrokerError::new(
                    code::QUEUE_FULL,
                    format!("queue '{name}' is full (max-length, overflow reject-publish)"),
                )),
                None => Outcome::Unroutable,
            };
        }
        let appended = match self.store.append(&to_stored(exchange, message, now), &ids) {
            Ok(appended) => appended,
            Err(e) => return Outcome::Refused(e.into()),
        };
        for queue in queues.iter().filter(|q| ids.contains(&q.id)) {
            if let (Some(max), Overflow::DropHead) =
                (queue.settings.max_length, queue.settings.overflow)
            {
                self.drop_head(vhost, queue, max);
            }
            queue.ready.notify_waiters();
        }
        match full {
            Some(name) => Outcome::Refused(BrokerError::new(
                code::QUEUE_FULL,
                format!(
                    "queue '{name}' is full (max-length, overflow reject-publish); other queues got the message"
                ),
            )),
            None => Outcome::Stored {
                durable_after: appended.needs_sync.then_some(DurableAt(appended.end)),
            },
        }
    }
}
