//! Dead-letter policies: what happens to a message that died.
//!
//! A policy decides one death at a time ([`DeadLetterPolicy::decide`]); the
//! broker asks about a group of deaths in one queue at once through
//! [`DeadLetterPolicy::decide_batch`], whose default asks `decide` about
//! each. Override it to decide a batch as a whole, or to answer
//! [`BatchAction::Park`].

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::bindings::base::switchyard::plugin::types::Bodies;
use crate::bindings::dead_letter as wit;
use crate::{Body, DeathReason, DeathRecord, Field, Message, PluginInfo};

pub use wit::exports::switchyard::plugin::dead_letter::{Action, Republish, Retry};
/// [`Action`] plus `Park(queue)`: keep the message in the named queue of
/// the same vhost (created by the broker if missing).
pub use wit::exports::switchyard::plugin::dead_letter_batch::Action as BatchAction;

use wit::exports::switchyard::plugin::dead_letter_batch::Death as WitDeath;

/// The circumstances of one death.
pub struct Death<'a> {
    /// The queue the message died in.
    pub queue: &'a str,
    /// That queue's arguments (e.g. `x-dead-letter-exchange`).
    pub queue_arguments: &'a [Field],
    pub reason: DeathReason,
    /// Oldest first; already includes this death.
    pub history: &'a [DeathRecord],
}

/// One death of a batch (the queue and its arguments are the batch's).
pub struct BatchDeath<'a> {
    pub message: &'a Message,
    pub body: Body<'a>,
    pub reason: DeathReason,
    /// Oldest first; already includes this death.
    pub history: &'a [DeathRecord],
}

impl From<Action> for BatchAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Drop => BatchAction::Drop,
            Action::Republish(target) => BatchAction::Republish(target),
            Action::Retry(retry) => BatchAction::Retry(retry),
        }
    }
}

pub trait DeadLetterPolicy: 'static {
    fn describe() -> PluginInfo;
    fn decide(message: &Message, body: &Body<'_>, death: &Death<'_>) -> Action;

    /// One action per death, in order; every death is in `queue`. The
    /// default asks [`DeadLetterPolicy::decide`] about each.
    fn decide_batch(
        queue: &str,
        queue_arguments: &[Field],
        deaths: &[BatchDeath<'_>],
    ) -> Vec<BatchAction> {
        deaths
            .iter()
            .map(|death| {
                let notice = Death {
                    queue,
                    queue_arguments,
                    reason: death.reason,
                    history: death.history,
                };
                Self::decide(death.message, &death.body, &notice).into()
            })
            .collect()
    }
}

#[doc(hidden)]
pub struct DeadLetterExport<T>(PhantomData<T>);

impl<T: DeadLetterPolicy> wit::Guest for DeadLetterExport<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
}

impl<T: DeadLetterPolicy> wit::exports::switchyard::plugin::dead_letter::Guest
    for DeadLetterExport<T>
{
    fn decide(
        message: Message,
        bodies: &Bodies,
        queue: String,
        queue_arguments: Vec<Field>,
        reason: DeathReason,
        history: Vec<DeathRecord>,
    ) -> Action {
        let body = Body::from_host(bodies, 0, message.body_size);
        let death = Death {
            queue: &queue,
            queue_arguments: &queue_arguments,
            reason,
            history: &history,
        };
        T::decide(&message, &body, &death)
    }
}

impl<T: DeadLetterPolicy> wit::exports::switchyard::plugin::dead_letter_batch::Guest
    for DeadLetterExport<T>
{
    fn decide_batch(
        queue: String,
        queue_arguments: Vec<Field>,
        deaths: Vec<WitDeath>,
        bodies: &Bodies,
    ) -> Vec<BatchAction> {
        let deaths: Vec<BatchDeath<'_>> = deaths
            .iter()
            .zip(0u32..)
            .map(|(death, index)| BatchDeath {
                message: &death.message,
                body: Body::from_host(bodies, index, death.message.body_size),
                reason: death.reason,
                history: &death.history,
            })
            .collect();
        T::decide_batch(&queue, &queue_arguments, &deaths)
    }
}

/// Exports `$plugin` (a [`DeadLetterPolicy`]) as this component's policy,
/// with both `decide` and `decide-batch`.
#[macro_export]
macro_rules! export_dead_letter {
    ($plugin:ty) => {
        // Only wasm builds export: natively the plugin is an ordinary library,
        // so several plugins can be linked into one test or benchmark binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardDeadLetterExport = $crate::dead_letter::DeadLetterExport<$plugin>;
            $crate::bindings::dead_letter::export!(__SwitchyardDeadLetterExport with_types_in $crate::bindings::dead_letter);
        };
    };
}
