//! {{name}}: a filter. Messages without a message id are rejected; the
//! second message with an id seen in the last minute is a duplicate.

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/filter-plugin" });

use exports::switchyard::plugin::filter::{Guest as Filter, Verdict};
use switchyard::plugin::kv;
use switchyard::plugin::types::{Bodies, Message, PluginKind};

struct Plugin;

const WINDOW_MS: u64 = 60_000;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            kind: PluginKind::Filter,
            key_only_routing: false,
            description: "requires a message id; drops repeats within a minute".into(),
        }
    }
}

impl Filter for Plugin {
    fn check(message: Message, _bodies: &Bodies) -> Verdict {
        let Some(id) = message.properties.message_id else {
            return Verdict::Reject("a message id is required".into());
        };
        if kv::set_if_absent(&format!("seen:{id}"), &[], Some(WINDOW_MS)) {
            Verdict::Accept
        } else {
            Verdict::Duplicate
        }
    }

    fn check_batch(messages: Vec<Message>, bodies: &Bodies) -> Vec<Verdict> {
        messages.into_iter().map(|m| Self::check(m, bodies)).collect()
    }
}

export!(Plugin);
