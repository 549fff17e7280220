//! `set-router-probe`: a test SET router whose behaviour is chosen by its
//! configuration, for the broker's tests of hostile and wrong routers. Not
//! a built-in.
//!
//! `mode` is one of `trap` (panics), `set:NAME` (every message to cell
//! NAME), `local`, `spin` (never returns), `short` (answers a batch with
//! one decision too few).
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::host::config;
use switchyard_plugin::{
    Body, Decision, Message, PluginInfo, PluginKind, SetRouter, SetTable, export_set_router,
    plugin_info,
};

pub struct Probe;

fn decide() -> Decision {
    let mode = config::get("mode").unwrap_or_default();
    match mode.as_str() {
        "trap" => panic!("set-router-probe: trap"),
        "spin" =>
        {
            #[allow(clippy::empty_loop)]
            loop {}
        }
        "local" | "short" => Decision::Local,
        other => match other.strip_prefix("set:") {
            Some(cell) => Decision::Set(String::from(cell)),
            None => Decision::Reject(alloc::format!("unknown probe mode '{other}'")),
        },
    }
}

impl SetRouter for Probe {
    fn describe() -> PluginInfo {
        plugin_info(
            "set-router-probe",
            env!("CARGO_PKG_VERSION"),
            PluginKind::SetRouter,
            false,
            "test SET router: traps, spins or names a given cell",
        )
    }

    fn route(_message: &Message, _body: &Body<'_>, _local_set: &str) -> Decision {
        decide()
    }

    fn route_batch(messages: &[Message], _bodies: &[Body<'_>], _table: &SetTable) -> Vec<Decision> {
        let mut decisions: Vec<Decision> = messages.iter().map(|_| decide()).collect();
        if config::get("mode").as_deref() == Some("short") {
            decisions.pop();
        }
        decisions
    }
}

export_set_router!(Probe);
