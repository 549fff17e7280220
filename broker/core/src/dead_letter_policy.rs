//! What happens to the dead: each batch of deaths in one queue goes to the
//! queue's dead-letter policy plugin in one call (`dead-letter-policy`, or
//! the built-in `dead-letter` — RabbitMQ's `dead-letter-exchange` /
//! `dead-letter-routing-key` — when only an exchange is set), and the
//! broker carries out its decisions: drop, republish to an exchange, retry
//! in the same queue after a delay (the delay scheduler), or park in a named
//! queue. Nothing is lost to a failure: a policy that traps, times out, is
//! quarantined or missing, and a decision that cannot be carried out (an
//! unknown exchange, a routing failure), send the message to the queue's
//! `dead-letter-fallback`, else the vhost's parking queue, with one log
//! line naming plugin, queue and cause.

use bytes::Bytes;
use switchyard_protocol::{Field, Message, Value};

use super::convert::{fields_to_plugin, message_to_plugin, to_stored};
use super::dead_letter::{Corpse, PARKING_QUEUE, reason_name};
use super::death_history::{self, Death};
use super::delays::{DELAY_HEADER, DELIVER_AT_HEADER};
use super::error::BrokerError;
use super::queue::{Queue, QueueSettings};
use super::records::{EncodedFields, QueueRecord};
use super::routing::Aftermath;
use super::{Broker, Outcome, Vhost};
use switchyard_plugin_host::{
    DeadLetterPolicy, DeathInput, DeathReason, DeathRecord, KvScope, PolicyAction,
};

/// The built-in policy: RabbitMQ's dead-letter exchange behaviour.
pub const DEFAULT_POLICY: &str = "dead-letter";

/// Deaths of one message after which it is parked whatever its policy
/// says: the guard against republish and retry loops.
const MAX_DEATHS: i64 = 64;

impl Broker {
    /// The policy deciding `queue`'s deaths, if its dead letters go anywhere.
    fn policy_for(
        &self,
        vhost: &Vhost,
        settings: &QueueSettings,
    ) -> Option<Result<DeadLetterPolicy, String>> {
        let name = match (&settings.dead_letter_policy, &settings.dead_letter_exchange) {
            (Some(name), _) => name.as_str(),
            (None, Some(_)) => DEFAULT_POLICY,
            (None, None) => return None,
        };
        Some(
            self.registry
                .get(name)
                .map_err(|e| e.to_string())
                .and_then(|slot| DeadLetterPolicy::new(slot).map_err(|e| e.to_string()))
                .map(|policy| policy.with_kv_scope(KvScope::vhost(&vhost.name))),
        )
    }

    /// Decides and carries out the fate of messages that died together in
    /// `queue` for `reason`.
    pub(super) fn dead_letter_batch(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        reason: DeathReason,
        corpses: Vec<Corpse>,
    ) {
        if corpses.is_empty() {
            return;
        }
        let policy = match self.policy_for(vhost, &queue.settings) {
            None => return,
            Some(Ok(policy)) => policy,
            Some(Err(cause)) => {
                let cause = format!("dead-letter policy unavailable: {cause}");
                for corpse in corpses {
                    self.park(vhost, queue, &cause, corpse.message);
                }
                return;
            }
        };
        let now = self.now_ms();
        let mut dead = Vec::with_capacity(corpses.len());
        let mut inputs = Vec::with_capacity(corpses.len());
        let mut bodies: Vec<Bytes> = Vec::with_capacity(corpses.len());
        for corpse in corpses {
            let (message, history, cycle) = mark_death(corpse, queue.name(), reason, now);
            inputs.push(DeathInput {
                message: message_to_plugin(&message),
                reason,
                history: to_plugin_history(&history),
            });
            bodies.push(message.body.clone());
            dead.push((message, cycle));
        }
        let arguments = fields_to_plugin(&x_prefixed(&queue.record.arguments.decode()));
        let label = policy.plugin().active().label().to_string();
        let actions = match policy.decide_batch(queue.name(), &arguments, &inputs, &bodies) {
            Ok(actions) => actions,
            Err(e) => {
                let cause = format!("dead-letter policy {label} failed: {e}");
                for (message, _) in dead {
                    self.park(vhost, queue, &cause, message);
                }
                return;
            }
        };
        let mut republished = Vec::new();
        for ((mut message, cycle), action) in dead.into_iter().zip(actions) {
            if deaths_of(&message) > MAX_DEATHS {
                let cause = format!("died {MAX_DEATHS} times (a dead-letter loop?)");
                self.park(vhost, queue, &cause, message);
                continue;
            }
            match action {
                PolicyAction::Drop => {}
                PolicyAction::Republish {
                    exchange,
                    routing_key,
                } => {
                    if cycle {
                        tracing::warn!(
                            queue = queue.name(),
                            reason = reason_name(reason),
                            "dead-letter cycle without a rejection: message dropped"
                        );
                        continue;
                    }
                    message.routing_key = routing_key;
                    republished.push((exchange, message));
                }
                PolicyAction::Retry { delay_ms } => self.retry(vhost, queue, message, delay_ms),
                PolicyAction::Park { queue: target } => {
                    if let Err(e) = self.keep_in(vhost, &target, message.clone()) {
                        let cause = format!("{label} parked in '{target}', which refused: {e}");
                        self.park(vhost, queue, &cause, message);
                    }
                }
            }
        }
        self.republish(vhost, queue, republished);
    }

    /// Publishes dead letters to the exchanges their policy chose; what an
    /// exchange refuses is parked.
    pub(super) fn republish(
        &self,
        vhost: &Vhost,
        queue: &Queue,
        mut letters: Vec<(String, Message)>,
    ) {
        let mut aftermath = Aftermath::default();
        while let Some((exchange, _)) = letters.first() {
            let exchange = exchange.clone();
            let (same, rest): (Vec<_>, Vec<_>) =
                letters.into_iter().partition(|(x, _)| *x == exchange);
            letters = rest;
            let messages: Vec<Message> = same.into_iter().map(|(_, m)| m).collect();
            let outcomes = self.publish_unchecked(vhost, &exchange, &messages, &mut aftermath);
            for (message, outcome) in messages.into_iter().zip(outcomes) {
                let cause = match outcome {
                    Outcome::Refused(e) => {
                        format!("dead-letter exchange '{exchange}' refused it: {e}")
                    }
                    // RabbitMQ drops these silently; here nothing is lost.
                    Outcome::Unroutable => format!(
                        "dead-letter exchange '{exchange}' routed it to no queue (routing key '{}')",
                        message.routing_key
                    ),
                    Outcome::Stored { .. } | Outcome::Forwarding { .. } | Outcome::Duplicate => {
                        continue;
                    }
                };
                self.park(vhost, queue, &cause, message);
            }
        }
        self.bury(vhost, aftermath);
    }

    /// Puts a dead message back into the queue it died in, visible after
    /// `delay_ms` (at once for 0).
    fn retry(&self, vhost: &Vhost, queue: &Queue, message: Message, delay_ms: u64) {
        let now = self.now_ms();
        let exchange = match switchyard_protocol::find(&message.headers, "x-death-exchange") {
            Some(Value::Text(exchange)) => exchange.clone(),
            _ => String::new(),
        };
        let result = if delay_ms == 0 {
            self.store
                .append(&to_stored(&exchange, &message, now), &[queue.id])
        } else {
            let due = now.saturating_add(delay_ms);
            let mut stored = to_stored(&exchange, &message, due);
            stored.deliver_after_ms = due;
            let appended = self.store.append_delayed(&stored, &[queue.id]);
            if appended.is_ok() {
                self.delayed_until(due);
            }
            appended
        };
        match result {
            Ok(_) => queue.ready.notify_waiters(),
            Err(e) => {
                let cause = format!("retry in '{}' failed: {e}", queue.name());
                self.park(vhost, queue, &cause, message);
            }
        }
    }

    /// Stores `message` in queue `name` of the vhost (created, durable, if
    /// it does not exist).
    pub(crate) fn keep_in(
        &self,
        vhost: &Vhost,
        name: &str,
        mut message: Message,
    ) -> Result<(), BrokerError> {
        if vhost.queue(name).is_err() {
            if name.is_empty() || name.len() > 255 {
                return Err(BrokerError::invalid_argument(format!(
                    "'{name}' is not a queue name"
                )));
            }
            let record = QueueRecord {
                vhost: vhost.name.clone(),
                name: name.into(),
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: EncodedFields::encode(&[]),
            };
            self.create_queue(vhost, record, QueueSettings::parse(&[])?, None)?;
        }
        message.routing_key = name.into();
        let mut aftermath = Aftermath::default();
        let outcome = self.publish_unchecked(vhost, "", &[message], &mut aftermath);
        self.bury(vhost, aftermath);
        match outcome.into_iter().next() {
            Some(Outcome::Refused(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// A dead letter nobody could take: kept in the queue's
    /// `dead-letter-fallback`, else in the vhost's parking queue
    /// ([`PARKING_QUEUE`]), never lost. A line says where and why (one a
    /// second per queue, counting the others).
    pub(super) fn park(&self, vhost: &Vhost, queue: &Queue, cause: &str, message: Message) {
        let fallback = queue
            .settings
            .dead_letter_fallback
            .as_deref()
            .filter(|name| vhost.queue(name).is_ok())
            .unwrap_or(PARKING_QUEUE);
        if let Some(unlogged) = queue.note_parked() {
            tracing::warn!(
                queue = queue.name(),
                cause,
                kept_in = fallback,
                earlier_unlogged = unlogged,
                "dead letter kept in the fallback queue"
            );
        }
        if let Err(e) = self.keep_in(vhost, fallback, message) {
            tracing::error!(queue = queue.name(), kept_in = fallback, error = %e, "dead letter lost: its fallback queue refused it");
        }
    }
}

/// Records this death in the message's history and headers (`x-death` and
/// the `x-death-*` summary); returns the message, its history (most recent
/// first) and whether this death closes a cycle without a rejection.
fn mark_death(
    corpse: Corpse,
    queue: &str,
    reason: DeathReason,
    now: u64,
) -> (Message, Vec<Death>, bool) {
    let Corpse {
        exchange,
        mut message,
    } = corpse;
    let deaths = deaths_of(&message) + 1;
    let mut history = death_history::read(&message.headers);
    let cycle = death_history::is_automatic_cycle(&history, queue, reason_name(reason));
    death_history::record(
        &mut history,
        Death {
            queue: queue.into(),
            reason: reason_name(reason).into(),
            count: 1,
            time_first: now,
            time_last: now,
            exchange: exchange.clone(),
            routing_keys: vec![message.routing_key.clone()],
        },
    );
    message.headers.retain(|f| {
        !f.name.starts_with("x-death-")
            && f.name != death_history::HEADER
            && f.name != DELAY_HEADER
            && f.name != DELIVER_AT_HEADER
    });
    message.headers.extend([
        death_history::to_header(&history),
        Field::new("x-death-count", Value::Int(deaths)),
        Field::new("x-death-reason", Value::Text(reason_name(reason).into())),
        Field::new("x-death-queue", Value::Text(queue.into())),
        Field::new("x-death-exchange", Value::Text(exchange)),
    ]);
    // A dead letter is not expired again by the TTL it carried.
    message.properties.expiration = None;
    (message, history, cycle)
}

fn deaths_of(message: &Message) -> i64 {
    match switchyard_protocol::find(&message.headers, "x-death-count") {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

/// The history as policies see it: oldest first.
fn to_plugin_history(history: &[Death]) -> Vec<DeathRecord> {
    history
        .iter()
        .rev()
        .filter_map(|death| {
            let reason = match death.reason.as_str() {
                "rejected" => DeathReason::Rejected,
                "expired" => DeathReason::Expired,
                "maxlen" => DeathReason::MaxLength,
                "delivery_limit" => DeathReason::DeliveryLimit,
                _ => return None,
            };
            Some(DeathRecord {
                queue: death.queue.clone(),
                reason,
                count: u32::try_from(death.count).unwrap_or(u32::MAX),
                time: death.time_first,
                exchange: death.exchange.clone(),
                routing_keys: death.routing_keys.clone(),
            })
        })
        .collect()
}

/// Queue arguments as policies read them: with AMQP's `x-` prefix.
fn x_prefixed(arguments: &[Field]) -> Vec<Field> {
    arguments
        .iter()
        .map(|f| match f.name.starts_with("x-") {
            true => f.clone(),
            false => Field::new(format!("x-{}", f.name), f.value.clone()),
        })
        .collect()
}
