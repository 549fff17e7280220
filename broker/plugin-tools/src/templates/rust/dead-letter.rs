//! {{name}}: a dead-letter policy. Rejected messages are retried after a
//! second, up to three times; everything else goes to the exchange named by
//! the queue's `x-dead-letter-exchange` argument, or is dropped.
//!
//! It implements the `dead-letter-batch-plugin` world: the broker asks
//! `decide-batch` about every death of a batch at once, and `decide` about
//! one death; both share `decide_one`.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/dead-letter-batch-plugin" });

use exports::switchyard::plugin::dead_letter::{Action, Guest as DeadLetter, Republish, Retry};
use exports::switchyard::plugin::dead_letter_batch::{
    Action as BatchAction, Death, Guest as DeadLetterBatch,
};
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

fn decide_one(
    message: &Message,
    queue: &str,
    queue_arguments: &[Field],
    reason: DeathReason,
    history: &[DeathRecord],
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
        Some(exchange) => Action::Republish(Republish { exchange, routing_key: message.routing_key.clone() }),
        None => Action::Drop,
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
        decide_one(&message, &queue, &queue_arguments, reason, &history)
    }
}

impl DeadLetterBatch for Plugin {
    /// One action per death, in order. `BatchAction::Park(queue)` keeps a
    /// message in the named queue of the same vhost.
    fn decide_batch(queue: String, queue_arguments: Vec<Field>, deaths: Vec<Death>, _bodies: &Bodies) -> Vec<BatchAction> {
        deaths
            .iter()
            .map(|d| match decide_one(&d.message, &queue, &queue_arguments, d.reason, &d.history) {
                Action::Drop => BatchAction::Drop,
                Action::Republish(target) => BatchAction::Republish(target),
                Action::Retry(retry) => BatchAction::Retry(retry),
            })
            .collect()
    }
}

export!(Plugin);
