//! `set-router`: SET (cell) routing.
//!
//! The routing variable (header `variable-header`, default `x-user-id`) is
//! hashed (FNV-1a 64), taken modulo 10000, and looked up in the SET table:
//! `sets = "set-a=0-4999; set-b=5000-9999"` (inclusive slot ranges). An
//! allow-list `allow.<set> = "u1,u2"` pins listed variables to a SET whatever
//! their slot. A message without the variable goes to the CENTER, or is
//! rejected when `missing = reject`. A slot no SET covers is rejected.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::host::config;
use switchyard_plugin::{
    Body, Decision, Message, PluginInfo, PluginKind, SetRouter, export_set_router, find_field,
    plugin_info, value_as_text,
};

pub struct SetRouting;

pub const SLOTS: u64 = 10_000;

pub fn slot_of(variable: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in variable.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % SLOTS
}

/// One SET's slot range, parsed from `name=low-high`.
struct Range {
    set: String,
    low: u64,
    high: u64,
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
            let low: u64 = low.trim().parse().map_err(|_| bad())?;
            let high: u64 = high.trim().parse().map_err(|_| bad())?;
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
        let header = config::get("variable-header").unwrap_or_else(|| "x-user-id".into());
        let Some(variable) = find_field(&message.headers, &header).and_then(value_as_text) else {
            return match config::get("missing").as_deref().map(str::trim) {
                Some("reject") => Decision::Reject(format!("message has no {header} header")),
                _ => Decision::Center,
            };
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
}

export_set_router!(SetRouting);
