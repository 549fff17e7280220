//! Exchange types: which bindings a message follows.

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::bindings::base::switchyard::plugin::types::Bodies;
use crate::bindings::exchange as wit;
use crate::{Binding, Body, Field, Message, PluginInfo};

/// An exchange type. The host asks it to validate each new binding and
/// builds one [`Router`] per set of bindings.
pub trait Exchange: 'static {
    type Router: Router;

    fn describe() -> PluginInfo;

    /// Rejects a binding the exchange cannot use, with a reason for the user.
    fn validate_binding(binding: &Binding, exchange_arguments: &[Field]) -> Result<(), String> {
        let _ = (binding, exchange_arguments);
        Ok(())
    }
}

/// The routing state of one exchange: built once per binding change, then
/// asked for every message.
pub trait Router: Sized + 'static {
    fn new(bindings: Vec<Binding>, exchange_arguments: Vec<Field>) -> Self;

    /// Indices into the bindings given to [`Router::new`].
    fn route(&self, message: &Message, body: &Body<'_>) -> Result<Vec<u32>, String>;
}

#[doc(hidden)]
pub struct ExchangeExport<T>(PhantomData<T>);

#[doc(hidden)]
pub struct RouterExport<R>(R);

impl<T: Exchange> wit::Guest for ExchangeExport<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
}

impl<T: Exchange> wit::exports::switchyard::plugin::exchange::Guest for ExchangeExport<T> {
    type Router = RouterExport<T::Router>;

    fn validate_binding(binding: Binding, exchange_arguments: Vec<Field>) -> Result<(), String> {
        T::validate_binding(&binding, &exchange_arguments)
    }
}

impl<R: Router> wit::exports::switchyard::plugin::exchange::GuestRouter for RouterExport<R> {
    fn new(bindings: Vec<Binding>, exchange_arguments: Vec<Field>) -> Self {
        RouterExport(R::new(bindings, exchange_arguments))
    }

    fn route(&self, message: Message, bodies: &Bodies) -> Result<Vec<u32>, String> {
        let body = Body::from_host(bodies, 0, message.body_size);
        self.0.route(&message, &body)
    }

    fn route_batch(
        &self,
        messages: Vec<Message>,
        bodies: &Bodies,
    ) -> Vec<Result<Vec<u32>, String>> {
        messages
            .iter()
            .zip(0u32..)
            .map(|(message, index)| {
                let body = Body::from_host(bodies, index, message.body_size);
                self.0.route(message, &body)
            })
            .collect()
    }
}

/// Exports `$plugin` (an [`Exchange`]) as this component's exchange type.
#[macro_export]
macro_rules! export_exchange {
    ($plugin:ty) => {
        // Only wasm builds export: natively the plugin is an ordinary library,
        // so several plugins can be linked into one test or benchmark binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardExchangeExport = $crate::exchange::ExchangeExport<$plugin>;
            $crate::bindings::exchange::export!(__SwitchyardExchangeExport with_types_in $crate::bindings::exchange);
        };
    };
}
