//! retry-backoff: a message rejected or past its delivery limit is retried
//! in its queue after 500 ms, 1 s and 2 s; its 4th death there parks it in
//! queue `<queue>.parked` (republished through the default exchange, which
//! routes by queue name). What an overflowing queue drops is parked at once;
//! what expired is dropped. The first delay is the plugin setting
//! `first-delay-ms`. See ../README.md.
//!
//! It implements `dead-letter-batch-plugin`: a batch of deaths is decided in
//! one call, reading the setting once.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/dead-letter-batch-plugin" });

use exports::switchyard::plugin::dead_letter::{Action, Guest as DeadLetter, Republish, Retry};
use exports::switchyard::plugin::dead_letter_batch::{
    Action as BatchAction, Death, Guest as DeadLetterBatch,
};
use switchyard::plugin::config;
use switchyard::plugin::types::{Bodies, DeathReason, DeathRecord, Field, Message, PluginKind};

struct Plugin;

const DEFAULT_FIRST_DELAY_MS: u64 = 500;
const RETRIES: u32 = 3;

/// The delay before the first retry: the `first-delay-ms` setting when it
/// is a number, else 500 ms. Each later retry waits twice as long.
fn first_delay_ms() -> u64 {
    config::get("first-delay-ms")
        .and_then(|ms| ms.trim().parse().ok())
        .unwrap_or(DEFAULT_FIRST_DELAY_MS)
}

/// Parks through the default exchange (""), which delivers to the queue
/// named by the routing key: no exchange to declare.
fn park(queue: &str) -> Action {
    Action::Republish(Republish {
        exchange: String::new(),
        routing_key: format!("{queue}.parked"),
    })
}

fn decide_one(queue: &str, reason: DeathReason, history: &[DeathRecord], first_delay_ms: u64) -> Action {
    match reason {
        DeathReason::Expired => Action::Drop,
        DeathReason::MaxLength => park(queue),
        DeathReason::Rejected | DeathReason::DeliveryLimit => {
            // This death included: the 1st to 3rd are retried, the 4th parks.
            let deaths: u32 = history.iter().filter(|d| d.queue == queue).map(|d| d.count).sum();
            if (1..=RETRIES).contains(&deaths) {
                Action::Retry(Retry { delay_ms: first_delay_ms.saturating_mul(1 << (deaths - 1)) })
            } else {
                park(queue)
            }
        }
    }
}

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "retry-backoff".into(),
            // The build metadata names the language: the Rust and Python
            // builds are distinct versions of one plugin, each able to
            // replace the other live.
            version: "2.0.0+rust".into(),
            kind: PluginKind::DeadLetter,
            key_only_routing: false,
            description: "retry three times with doubling delays, then park in <queue>.parked".into(),
        }
    }
}

impl DeadLetter for Plugin {
    fn decide(
        _message: Message,
        _bodies: &Bodies,
        queue: String,
        _queue_arguments: Vec<Field>,
        reason: DeathReason,
        history: Vec<DeathRecord>,
    ) -> Action {
        decide_one(&queue, reason, &history, first_delay_ms())
    }
}

impl DeadLetterBatch for Plugin {
    fn decide_batch(queue: String, _queue_arguments: Vec<Field>, deaths: Vec<Death>, _bodies: &Bodies) -> Vec<BatchAction> {
        let first_delay_ms = first_delay_ms();
        deaths
            .iter()
            .map(|d| match decide_one(&queue, d.reason, &d.history, first_delay_ms) {
                Action::Drop => BatchAction::Drop,
                Action::Republish(target) => BatchAction::Republish(target),
                Action::Retry(retry) => BatchAction::Retry(retry),
            })
            .collect()
    }
}

export!(Plugin);
