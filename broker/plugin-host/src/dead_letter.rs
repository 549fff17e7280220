//! Calling dead-letter policies: one death at a time (`decide`, the 0.1.0
//! contract, used by conformance) or a group of deaths in one queue at once
//! (`decide_batch`), which the broker uses for expired heads of a queue, a
//! drop-head burst or a `nack multiple`. A batch is one sandboxed call on
//! one instance whether or not the plugin exports `dead-letter-batch`.

use bytes::Bytes;

use super::bindings::{Action, BatchAction, BatchDeath, DeathReason, DeathRecord, Field, Message};
use super::error::PluginError;
use super::failure::CallFailure;
use super::handle::{DeadLetterKind, PluginHandle};
use super::policies::check_text;
use super::version::{KindExports, PluginInstance, with_bodies};

/// A dead-letter policy plugin.
pub type DeadLetterPolicy = PluginHandle<DeadLetterKind>;

/// The circumstances of one death, as the policy sees them.
pub struct DeathNotice<'a> {
    pub queue: &'a str,
    pub queue_arguments: &'a [Field],
    pub reason: DeathReason,
    /// Oldest first, including this death.
    pub history: &'a [DeathRecord],
}

/// One death of a batch: `message`, why it died, and its history (oldest
/// first, including this death). The WIT record itself, so a batch is
/// lowered into the plugin without another copy.
pub type DeathInput = BatchDeath;

/// What a policy decided for one death, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    Drop,
    Republish {
        exchange: String,
        routing_key: String,
    },
    /// Back into the queue it died in after `delay_ms`.
    Retry {
        delay_ms: u64,
    },
    /// Kept in `queue` of the same vhost (created if missing).
    Park {
        queue: String,
    },
}

impl From<Action> for PolicyAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Drop => PolicyAction::Drop,
            Action::Republish(r) => PolicyAction::Republish {
                exchange: r.exchange,
                routing_key: r.routing_key,
            },
            Action::Retry(r) => PolicyAction::Retry {
                delay_ms: r.delay_ms,
            },
        }
    }
}

impl From<BatchAction> for PolicyAction {
    fn from(action: BatchAction) -> Self {
        match action {
            BatchAction::Drop => PolicyAction::Drop,
            BatchAction::Republish(r) => PolicyAction::Republish {
                exchange: r.exchange,
                routing_key: r.routing_key,
            },
            BatchAction::Retry(r) => PolicyAction::Retry {
                delay_ms: r.delay_ms,
            },
            BatchAction::Park(queue) => PolicyAction::Park { queue },
        }
    }
}

impl PolicyAction {
    /// Refuses names the broker could not use.
    fn check(&self) -> Result<(), CallFailure> {
        match self {
            PolicyAction::Republish {
                exchange,
                routing_key,
            } => {
                check_text("the republish exchange", exchange)?;
                check_text("the republish routing key", routing_key)
            }
            PolicyAction::Park { queue } if queue.is_empty() => Err(CallFailure::InvalidResult(
                "the park queue name is empty".into(),
            )),
            PolicyAction::Park { queue } => check_text("the park queue name", queue),
            PolicyAction::Drop | PolicyAction::Retry { .. } => Ok(()),
        }
    }
}

impl DeadLetterPolicy {
    pub fn decide(
        &self,
        message: &Message,
        body: &Bytes,
        death: &DeathNotice<'_>,
    ) -> Result<Action, PluginError> {
        self.slot.active().call(&self.scope, |instance| {
            let PluginInstance {
                store,
                exports: KindExports::DeadLetter(exports, _),
                ..
            } = instance
            else {
                unreachable!("dead-letter slots hold dead-letter plugins");
            };
            let action = with_bodies(store, vec![body.clone()], |store, bodies| {
                exports.call_decide(
                    store,
                    message,
                    bodies,
                    death.queue,
                    death.queue_arguments,
                    death.reason,
                    death.history,
                )
            })?;
            PolicyAction::from(action.clone()).check()?;
            Ok(action)
        })
    }

    /// One action per death, in order, from one sandboxed call: the
    /// plugin's `decide-batch` when it exports it, else its `decide` once
    /// per death inside that same call. All deaths are in `queue`;
    /// `bodies[i]` is the body of `deaths[i]` (missing ones read as empty).
    pub fn decide_batch(
        &self,
        queue: &str,
        queue_arguments: &[Field],
        deaths: &[DeathInput],
        bodies: &[Bytes],
    ) -> Result<Vec<PolicyAction>, PluginError> {
        if deaths.is_empty() {
            return Ok(Vec::new());
        }
        let body = |i: usize| bodies.get(i).cloned().unwrap_or_default();
        self.slot.active().call(&self.scope, |instance| {
            let PluginInstance {
                store,
                exports: KindExports::DeadLetter(single, batch),
                ..
            } = instance
            else {
                unreachable!("dead-letter slots hold dead-letter plugins");
            };
            let actions: Vec<PolicyAction> = match batch {
                Some(batch) => {
                    let call_bodies = (0..deaths.len()).map(body).collect();
                    with_bodies(store, call_bodies, |store, handle| {
                        batch.call_decide_batch(store, queue, queue_arguments, deaths, handle)
                    })?
                    .into_iter()
                    .map(PolicyAction::from)
                    .collect()
                }
                None => {
                    // `decide` reads its body as index 0, so each death
                    // lends its own body.
                    let mut actions = Vec::with_capacity(deaths.len());
                    for (i, death) in deaths.iter().enumerate() {
                        let action = with_bodies(store, vec![body(i)], |store, handle| {
                            single.call_decide(
                                store,
                                &death.message,
                                handle,
                                queue,
                                queue_arguments,
                                death.reason,
                                &death.history,
                            )
                        })?;
                        actions.push(PolicyAction::from(action));
                    }
                    actions
                }
            };
            if actions.len() != deaths.len() {
                return Err(CallFailure::InvalidResult(format!(
                    "{} actions for {} deaths",
                    actions.len(),
                    deaths.len()
                )));
            }
            for action in &actions {
                action.check()?;
            }
            Ok(actions)
        })
    }
}
