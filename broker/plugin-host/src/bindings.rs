//! The one wasmtime `bindgen!` seam: every WIT type and call the host uses is
//! generated here from `wit/`, for the host-only world `plugin-host` that
//! exports all four plugin interfaces. A real plugin exports one of them; the
//! host looks each up on its own (`GuestIndices`), so one set of bindings
//! serves every world.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin-host",
    with: {
        "switchyard:plugin/types.bodies": super::capabilities::CallBodies,
    },
    additional_derives: [PartialEq],
    // A kv write past a quota ends the call with the reason: the 0.1.x
    // contract gives `set` no error result to return it in.
    imports: {
        "switchyard:plugin/kv.set": trappable,
        "switchyard:plugin/kv.set-if-absent": trappable,
    },
});

pub use self::exports::switchyard::plugin::dead_letter::{Action, Republish, Retry};
pub use self::exports::switchyard::plugin::dead_letter_batch::{
    Action as BatchAction, Death as BatchDeath,
};
pub use self::exports::switchyard::plugin::filter::Verdict;
pub use self::exports::switchyard::plugin::set_router::Decision;
pub use self::switchyard::plugin::log::Level;
pub use self::switchyard::plugin::types::{
    Binding, DeathReason, DeathRecord, Field, Message, PluginKind, Properties, Value,
};

/// The WIT package of every plugin contract (`wit/`) and its version: the
/// one place they are written down on the host side.
pub const WIT_PACKAGE: &str = "switchyard:plugin";
pub const WIT_VERSION: &str = "0.1.1";

/// `switchyard:plugin/<interface>@<version>`.
pub fn interface_name(interface: &str) -> String {
    format!("{WIT_PACKAGE}/{interface}@{WIT_VERSION}")
}

/// Whether the export `name` is `interface` of this package at a version
/// semver-compatible with ours (any 0.1.x): wasmtime resolves such names to
/// each other, so a component built against 0.1.0 is found by 0.1.1 lookups.
pub fn is_interface(name: &str, interface: &str) -> bool {
    let series = WIT_VERSION.rsplit_once('.').map_or(WIT_VERSION, |(s, _)| s);
    name.strip_prefix(WIT_PACKAGE)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_prefix(interface))
        .and_then(|rest| rest.strip_prefix('@'))
        .and_then(|version| version.strip_prefix(series))
        .is_some_and(|patch| {
            patch
                .strip_prefix('.')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Whether the export `name` is the interface that identifies `kind`'s world.
pub fn is_world_interface(name: &str, kind: PluginKind) -> bool {
    is_interface(name, kind.as_str())
}

pub const ALL_KINDS: [PluginKind; 4] = [
    PluginKind::Exchange,
    PluginKind::DeadLetter,
    PluginKind::Filter,
    PluginKind::SetRouter,
];

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Exchange => "exchange",
            PluginKind::DeadLetter => "dead-letter",
            PluginKind::Filter => "filter",
            PluginKind::SetRouter => "set-router",
        }
    }

    /// "an exchange plugin", "a filter plugin": for messages.
    pub fn a_plugin(self) -> String {
        let article = if self.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {self} plugin")
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// The type is generated, so it cannot carry a derive of its own.
#[allow(clippy::derivable_impls)]
impl Default for Properties {
    fn default() -> Self {
        Properties {
            message_id: None,
            correlation_id: None,
            reply_to: None,
            content_type: None,
            content_encoding: None,
            priority: None,
            timestamp: None,
            expiration: None,
            kind: None,
            app_id: None,
            user_id: None,
        }
    }
}

impl Message {
    /// A message with only a routing key, for routing that needs nothing else.
    pub fn with_key(routing_key: impl Into<String>) -> Self {
        Message {
            routing_key: routing_key.into(),
            headers: Vec::new(),
            properties: Properties::default(),
            body_size: 0,
        }
    }
}

impl Field {
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        Field {
            name: name.into(),
            value,
        }
    }
}
