//! Dead-letter policies: what happens to a message that died.

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::bindings::base::switchyard::plugin::types::Bodies;
use crate::bindings::dead_letter as wit;
use crate::{Body, DeathReason, DeathRecord, Field, Message, PluginInfo};

pub use wit::exports::switchyard::plugin::dead_letter::{Action, Republish, Retry};

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

pub trait DeadLetterPolicy: 'static {
    fn describe() -> PluginInfo;
    fn decide(message: &Message, body: &Body<'_>, death: &Death<'_>) -> Action;
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

/// Exports `$plugin` (a [`DeadLetterPolicy`]) as this component's policy.
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
