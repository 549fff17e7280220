//! retry-backoff: retry rejected messages after 500 ms, 1 s, 2 s, 4 s, then
//! park them on exchange `parking`; park what an overflowing queue drops;
//! drop what expired. See ../README.md.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/dead-letter-plugin" });

use exports::switchyard::plugin::dead_letter::{Action, Guest as DeadLetter, Republish, Retry};
use switchyard::plugin::types::{Bodies, DeathReason, DeathRecord, Field, Message, PluginKind};

struct Plugin;

const FIRST_DELAY_MS: u64 = 500;
const RETRIES: u32 = 4;
const PARKING: &str = "parking";

fn park(queue: &str, why: &str) -> Action {
    Action::Republish(Republish {
        exchange: PARKING.into(),
        routing_key: format!("{queue}.{why}"),
    })
}

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "retry-backoff".into(),
            version: "1.0.0".into(),
            kind: PluginKind::DeadLetter,
            key_only_routing: false,
            description: "retry with doubling delays, then park on exchange parking".into(),
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
        match reason {
            DeathReason::Expired => Action::Drop,
            DeathReason::MaxLength => park(&queue, "overflow"),
            DeathReason::Rejected | DeathReason::DeliveryLimit => {
                let deaths: u32 = history.iter().filter(|d| d.queue == queue).map(|d| d.count).sum();
                if (1..=RETRIES).contains(&deaths) {
                    Action::Retry(Retry { delay_ms: FIRST_DELAY_MS << (deaths - 1) })
                } else {
                    park(&queue, "parked")
                }
            }
        }
    }
}

export!(Plugin);
