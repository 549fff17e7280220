//! {{name}}: a dead-letter policy. Rejected messages are retried after a
//! second, up to three times; everything else goes to the exchange named by
//! the queue's `x-dead-letter-exchange` argument, or is dropped.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/dead-letter-plugin" });

use exports::switchyard::plugin::dead_letter::{Action, Guest as DeadLetter, Republish, Retry};
use switchyard::plugin::types::{Bodies, DeathReason, DeathRecord, Field, Message, PluginKind, Value};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            kind: PluginKind::DeadLetter,
            key_only_routing: false,
            description: "retry rejected messages three times, then dead-letter".into(),
        }
    }
}

impl DeadLetter for Plugin {
    fn decide(
        message: Message,
        _bodies: &Bodies,
        queue: String,
        queue_arguments: Vec<Field>,
        reason: DeathReason,
        history: Vec<DeathRecord>,
    ) -> Action {
        let deaths: u32 = history.iter().filter(|d| d.queue == queue).map(|d| d.count).sum();
        if reason == DeathReason::Rejected && deaths <= 3 {
            return Action::Retry(Retry { delay_ms: 1000 });
        }
        let exchange = queue_arguments.iter().find_map(|f| match (&*f.name, &f.value) {
            ("x-dead-letter-exchange", Value::Text(exchange)) => Some(exchange.clone()),
            _ => None,
        });
        match exchange {
            Some(exchange) => Action::Republish(Republish { exchange, routing_key: message.routing_key }),
            None => Action::Drop,
        }
    }
}

export!(Plugin);
