//! SET (cell) routing: which cell serves a message.

use alloc::string::String;
use core::marker::PhantomData;

use crate::bindings::base::switchyard::plugin::types::Bodies;
use crate::bindings::set_router as wit;
use crate::{Body, Message, PluginInfo};

pub use wit::exports::switchyard::plugin::set_router::Decision;

pub trait SetRouter: 'static {
    fn describe() -> PluginInfo;
    /// `local_set` is the id of the SET this broker belongs to.
    fn route(message: &Message, body: &Body<'_>, local_set: &str) -> Decision;
}

#[doc(hidden)]
pub struct SetRouterExport<T>(PhantomData<T>);

impl<T: SetRouter> wit::Guest for SetRouterExport<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
}

impl<T: SetRouter> wit::exports::switchyard::plugin::set_router::Guest for SetRouterExport<T> {
    fn route(message: Message, bodies: &Bodies, local_set: String) -> Decision {
        T::route(
            &message,
            &Body::from_host(bodies, 0, message.body_size),
            &local_set,
        )
    }
}

/// Exports `$plugin` (a [`SetRouter`]) as this component's SET router.
#[macro_export]
macro_rules! export_set_router {
    ($plugin:ty) => {
        // Only wasm builds export: natively the plugin is an ordinary library,
        // so several plugins can be linked into one test or benchmark binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardSetRouterExport = $crate::set_router::SetRouterExport<$plugin>;
            $crate::bindings::set_router::export!(__SwitchyardSetRouterExport with_types_in $crate::bindings::set_router);
        };
    };
}
