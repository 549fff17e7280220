//! Routing and storing messages: the exchange's filter plugin (if any)
//! checks the batch, its routing plugin routes what passed with one call,
//! and each routed message is appended to the commit log once, whatever
//! the number of queues it goes to. Nothing here dead-letters: the deaths
//! a batch causes (drop-head queues past their max-length, messages a full
//! `reject-publish-dlx` queue refused) are handed back to the caller as an
//! [`Aftermath`] (so dead-lettering, itself a publish, does not call back
//! into this file's callers).

use std::sync::Arc;

use bytes::Bytes;
use switchyard_protocol::{Message, code};

use super::convert::{message_to_plugin, to_stored};
use super::delays::due_time;
use super::error::BrokerError;
use super::exchange::Exchange;
use super::header_limits::plugin_call_pieces;
use super::publish::{DurableAt, Outcome};
use super::queue::{Overflow, Queue};
use super::{Broker, Vhost};
use switchyard_plugin_host::Verdict;

/// What routing leaves for the dead-letter side to do once the batch is
/// stored: the deaths it caused, collected so they are handled together.
#[derive(Default)]
pub(crate) struct Aftermath {
    /// Drop-head queues a message took past their max-length.
    pub overfull: Vec<Arc<Queue>>,
    /// Messages a full `reject-publish-dlx` queue refused: dead-lettered
    /// from that queue with reason `maxlen` (exchange published to, message).
    pub refused: Vec<(Arc<Queue>, String, Message)>,
}
use switchyard_storage::QueueId;

impl Broker {
    /// Routes and stores messages published to `exchange`, without asking
    /// whose they are: for the broker's own republishing (dead letters).
    /// The deaths it causes are added to `aftermath` (see the module
    /// comment).
    pub(crate) fn publish_unchecked(
        &self,
        vhost: &Vhost,
        exchange: &str,
        messages: &[Message],
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        self.through_exchange(vhost, exchange, messages, |exchange| {
            match &exchange.set_router {
                Some(router) => {
                    self.place_and_publish(vhost, exchange, router, messages, aftermath)
                }
                None => self.filter_route_and_store(vhost, exchange, messages, aftermath),
            }
        })
    }

    /// Stores messages another cell forwarded (never SET-routed again).
    pub(crate) fn publish_unchecked_forwarded(
        &self,
        vhost: &Vhost,
        exchange: &str,
        messages: &[Message],
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        self.through_exchange(vhost, exchange, messages, |exchange| {
            self.publish_forwarded(vhost, exchange, messages, aftermath)
        })
    }

    /// `publish` through exchange `name` of `vhost` (every message refused
    /// if there is none), counted in the exchange's totals.
    fn through_exchange(
        &self,
        vhost: &Vhost,
        name: &str,
        messages: &[Message],
        publish: impl FnOnce(&Exchange) -> Vec<Outcome>,
    ) -> Vec<Outcome> {
        let exchange = match vhost.exchange(name) {
            Ok(exchange) => exchange,
            Err(e) => return vec![Outcome::Refused(e); messages.len()],
        };
        let outcomes = publish(&exchange);
        exchange.counters.count(&outcomes);
        outcomes
    }

    /// The exchange's filter (if any), then routing and storing, in
    /// pieces of bounded metadata per plugin call (`header_limits.rs`).
    pub(crate) fn filter_route_and_store(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        messages: &[Message],
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        let pieces = plugin_call_pieces(messages);
        if pieces.len() == 1 {
            return self.filter_route_and_store_piece(vhost, exchange, messages, aftermath);
        }
        pieces
            .into_iter()
            .flat_map(|piece| {
                self.filter_route_and_store_piece(vhost, exchange, &messages[piece], aftermath)
            })
            .collect()
    }

    fn filter_route_and_store_piece(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        messages: &[Message],
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        let Some(filter) = &exchange.filter else {
            return self.route_and_store(vhost, exchange, messages, aftermath);
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
        let mut stored = self
            .route_and_store(vhost, exchange, &passed, aftermath)
            .into_iter();
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
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        let routes = self.route(vhost, exchange, messages);
        let now = self.now_ms();
        messages
            .iter()
            .zip(routes)
            .map(|(message, route)| match route {
                Ok(queues) => self.store_routed(exchange.name(), message, &queues, now, aftermath),
                Err(e) => Outcome::Refused(e),
            })
            .collect()
    }

    /// The queues each message goes to.
    pub(crate) fn route(
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
        exchange: &str,
        message: &Message,
        queues: &[Arc<Queue>],
        now: u64,
        aftermath: &mut Aftermath,
    ) -> Outcome {
        let mut ids: Vec<QueueId> = Vec::with_capacity(queues.len());
        let mut full = None;
        for queue in queues {
            if queue.settings.has_limits()
                && queue.settings.overflow != Overflow::DropHead
                && self
                    .store
                    .stats(queue.id)
                    .is_ok_and(|s| queue.settings.is_full(&s))
            {
                full = Some(queue.name().to_string());
                if queue.settings.overflow == Overflow::RejectPublishDlx {
                    aftermath
                        .refused
                        .push((queue.clone(), exchange.to_string(), message.clone()));
                }
                continue;
            }
            ids.push(queue.id);
        }
        let due = match due_time(message, now) {
            Ok(due) => due,
            Err(e) => return Outcome::Refused(e),
        };
        if ids.is_empty() {
            return match full {
                Some(name) => Outcome::Refused(BrokerError::new(
                    code::QUEUE_FULL,
                    format!(
                        "queue '{name}' is full (max-length / max-length-bytes, overflow reject-publish)"
                    ),
                )),
                None => Outcome::Unroutable,
            };
        }
        let appended = match due {
            None => self.store.append(&to_stored(exchange, message, now), &ids),
            // It enters its queues as if published when due (TTLs count
            // from then): core/delays.rs.
            Some(due) => {
                let mut stored = to_stored(exchange, message, due);
                stored.deliver_after_ms = due;
                self.store.append_delayed(&stored, &ids)
            }
        };
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => return Outcome::Refused(e.into()),
        };
        if let Some(due) = due {
            self.delayed_until(due);
        }
        for queue in queues.iter().filter(|q| ids.contains(&q.id)) {
            // A delayed message counts as published now (what its
            // publisher did), and is ready (and may overfill) when due.
            queue.counters.published(1);
            if due.is_some() {
                continue;
            }
            if queue.settings.has_limits()
                && queue.settings.overflow == Overflow::DropHead
                && self
                    .store
                    .stats(queue.id)
                    .is_ok_and(|s| queue.settings.is_over(&s))
                && !aftermath.overfull.iter().any(|q| q.id == queue.id)
            {
                aftermath.overfull.push(queue.clone());
            }
            queue.ready.notify_waiters();
        }
        match full {
            Some(name) => Outcome::Refused(BrokerError::new(
                code::QUEUE_FULL,
                format!(
                    "queue '{name}' is full (max-length / max-length-bytes, overflow reject-publish); other queues got the message"
                ),
            )),
            None => Outcome::Stored {
                durable_after: appended.needs_sync.then_some(DurableAt(appended.end)),
            },
        }
    }
}
