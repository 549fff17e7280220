//! {{name}}: an exchange plugin. A message follows every binding whose key
//! equals its routing key; change `route` to route your way.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/exchange-plugin" });

use exports::switchyard::plugin::exchange::{Guest as Exchange, GuestRouter};
use switchyard::plugin::types::{Binding, Bodies, Field, Message, PluginKind};

struct Plugin;

struct Router {
    bindings: Vec<Binding>,
}

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            kind: PluginKind::Exchange,
            // True only if `route` looks at nothing but the routing key.
            key_only_routing: true,
            description: "routes by routing key = binding key".into(),
        }
    }
}

impl Exchange for Plugin {
    type Router = Router;

    fn validate_binding(_binding: Binding, _exchange_arguments: Vec<Field>) -> Result<(), String> {
        Ok(())
    }
}

impl GuestRouter for Router {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        Router { bindings }
    }

    fn route(&self, message: Message, _bodies: &Bodies) -> Result<Vec<u32>, String> {
        Ok(self
            .bindings
            .iter()
            .enumerate()
            .filter(|(_, binding)| binding.key == message.routing_key)
            .map(|(index, _)| index as u32)
            .collect())
    }

    fn route_batch(&self, messages: Vec<Message>, bodies: &Bodies) -> Vec<Result<Vec<u32>, String>> {
        messages.into_iter().map(|m| self.route(m, bodies)).collect()
    }
}

export!(Plugin);
