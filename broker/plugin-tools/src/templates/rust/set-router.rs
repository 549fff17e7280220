//! {{name}}: a SET router. Messages with header `x-region` = `eu` are served
//! by SET `eu`, `us` by SET `us`; messages without it are global (CENTER).

wit_bindgen::generate!({ path: "wit", world: "switchyard:plugin/set-router-plugin" });

use exports::switchyard::plugin::set_router::{Decision, Guest as SetRouter};
use switchyard::plugin::types::{Bodies, Message, PluginKind, Value};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            kind: PluginKind::SetRouter,
            key_only_routing: false,
            description: "SET by the x-region header".into(),
        }
    }
}

impl SetRouter for Plugin {
    fn route(message: Message, _bodies: &Bodies, local_set: String) -> Decision {
        let region = message.headers.iter().find_map(|f| match (&*f.name, &f.value) {
            ("x-region", Value::Text(region)) => Some(region.clone()),
            _ => None,
        });
        match region.as_deref() {
            None => Decision::Center,
            Some(region) if region == local_set => Decision::Local,
            Some(region @ ("eu" | "us")) => Decision::Set(region.into()),
            Some(other) => Decision::Reject(format!("unknown region {other}")),
        }
    }
}

export!(Plugin);
