//! `set-router`: SET (cell) routing.
//!
//! The routing variable (header `variable-header`; by default `x-set-key`,
//! or `x-user-id` when that is absent) is hashed (FNV-1a 64), taken modulo
//! 10000, and looked up in a SET table.
//!
//! - `route-batch` (what the broker calls) uses the broker's SET table
//!   (`switchyard cells …`, docs/SET.md): its ranges and pins.
//! - `route` (0.1.0 brokers) uses the plugin's own table from its config:
//!   `sets = "set-a=0-4999; set-b=5000-9999"` (inclusive slot ranges) and
//!   allow-lists `allow.<set> = "u1,u2"` pinning variables to a SET.
//!
//! A message without the variable goes to the CENTER, or is rejected when
//! `missing = reject`. A slot no SET covers is rejected.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::host::config;
use switchyard_plugin::{
    Body, CENTER_CELL, Decision, Message, PluginInfo, PluginKind, SLOTS, SetRouter, SetTable,
    cell_of, export_set_router, find_field, plugin_info, slot_of, value_as_text,
};

pub struct SetRouting;

/// One SET's slot range, parsed from `name=low-high`.
struct Range {
    set: String,
    low: u32,
    high: u32,
}

fn parse_sets(table: &str) -> Result<Vec<Range>, String> {
    table
        .split([';', '\n'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let bad = || format!("bad SET table entry {entry:?}; expected name=low-high");
            let (set, range) = entry.split_once('=').ok_or_else(bad)?;
            let (low, high) = range.split_once('-').ok_or_else(bad)?;
            let low: u32 = low.trim().parse().map_err(|_| bad())?;
            let high: u32 = high.trim().parse().map_err(|_| bad())?;
            if low > high || high >= SLOTS {
                return Err(bad());
            }
            Ok(Range {
                set: set.trim().into(),
                low,
                high,
            })
        })
        .collect()
}

fn allow_listed(variable: &str) -> Option<String> {
    config::all().into_iter().find_map(|(name, members)| {
        let set = name.strip_prefix("allow.")?;
        members
            .split(',')
            .any(|member| member.trim() == variable)
            .then(|| set.into())
    })
}

fn decide(set: String, local_set: &str) -> Decision {
    if set == local_set {
        Decision::Local
    } else {
        Decision::Set(set)
    }
}

/// The message's routing variable, or the decision for a message without
/// one.
fn routing_variable(message: &Message) -> Result<String, Decision> {
    let configured = config::get("variable-header");
    let headers: &[&str] = match &configured {
        Some(header) => &[header.as_str()],
        None => &["x-set-key", "x-user-id"],
    };
    if let Some(variable) = headers
        .iter()
        .find_map(|h| find_field(&message.headers, h).and_then(value_as_text))
    {
        return Ok(variable);
    }
    Err(match config::get("missing").as_deref().map(str::trim) {
        Some("reject") => Decision::Reject(format!("message has no {} header", headers[0])),
        _ => Decision::Center,
    })
}

/// The decision for `variable` under the broker's table.
fn decide_by_table(variable: &str, table: &SetTable) -> Decision {
    match cell_of(table, variable) {
        Some(cell) if cell == table.local_cell => Decision::Local,
        Some(CENTER_CELL) => Decision::Center,
        Some(cell) => Decision::Set(cell.into()),
        None => Decision::Reject(format!(
            "no SET covers slot {} (SET table version {})",
            slot_of(variable),
            table.version
        )),
    }
}

impl SetRouter for SetRouting {
    fn describe() -> PluginInfo {
        plugin_info(
            "set-router",
            env!("CARGO_PKG_VERSION"),
            PluginKind::SetRouter,
            false,
            "hash a routing variable mod 10000 onto SET ranges, with allow-lists and a CENTER",
        )
    }

    fn route(message: &Message, _body: &Body<'_>, local_set: &str) -> Decision {
        let variable = match routing_variable(message) {
            Ok(variable) => variable,
            Err(missing) => return missing,
        };
        if let Some(set) = allow_listed(&variable) {
            return decide(set, local_set);
        }
        let ranges = match parse_sets(&config::get("sets").unwrap_or_default()) {
            Ok(ranges) => ranges,
            Err(error) => return Decision::Reject(error),
        };
        let slot = slot_of(&variable);
        match ranges
            .into_iter()
            .find(|r| (r.low..=r.high).contains(&slot))
        {
            Some(range) => decide(range.set, local_set),
            None => Decision::Reject(format!("no SET covers slot {slot}")),
        }
    }

    fn route_batch(messages: &[Message], _bodies: &[Body<'_>], table: &SetTable) -> Vec<Decision> {
        messages
            .iter()
            .map(|message| match routing_variable(message) {
                Ok(variable) => decide_by_table(&variable, table),
                Err(missing) => missing,
            })
            .collect()
    }
}

export_set_router!(SetRouting);
