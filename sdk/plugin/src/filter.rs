//! Filters: accept, suppress as duplicate, or reject a message.

use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::bindings::base::switchyard::plugin::types::Bodies;
use crate::bindings::filter as wit;
use crate::{Body, Message, PluginInfo};

pub use wit::exports::switchyard::plugin::filter::Verdict;

pub trait Filter: 'static {
    fn describe() -> PluginInfo;
    fn check(message: &Message, body: &Body<'_>) -> Verdict;
}

#[doc(hidden)]
pub struct FilterExport<T>(PhantomData<T>);

impl<T: Filter> wit::Guest for FilterExport<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
}

impl<T: Filter> wit::exports::switchyard::plugin::filter::Guest for FilterExport<T> {
    fn check(message: Message, bodies: &Bodies) -> Verdict {
        T::check(&message, &Body::from_host(bodies, 0, message.body_size))
    }

    fn check_batch(messages: Vec<Message>, bodies: &Bodies) -> Vec<Verdict> {
        messages
            .iter()
            .zip(0u32..)
            .map(|(message, index)| {
                T::check(message, &Body::from_host(bodies, index, message.body_size))
            })
            .collect()
    }
}

/// Exports `$plugin` (a [`Filter`]) as this component's filter.
#[macro_export]
macro_rules! export_filter {
    ($plugin:ty) => {
        // Only wasm builds export: natively the plugin is an ordinary library,
        // so several plugins can be linked into one test or benchmark binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardFilterExport = $crate::filter::FilterExport<$plugin>;
            $crate::bindings::filter::export!(__SwitchyardFilterExport with_types_in $crate::bindings::filter);
        };
    };
}
