//! `headers`: routes on message headers instead of the routing key.
//!
//! A binding's arguments are the headers to match; `x-match` chooses how:
//! `all` (default) or `any`, ignoring arguments whose names start with `x-`,
//! or `all-with-x` / `any-with-x`, which include them. An argument with no
//! value (void) matches on the header's presence alone.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::{
    Binding, Body, Exchange, Field, Message, PluginInfo, PluginKind, Router, Value,
    export_exchange, find_field, plugin_info,
};

pub struct Headers;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    All,
    Any,
}

struct Rule {
    mode: Mode,
    /// The arguments that take part in matching.
    fields: Vec<Field>,
}

pub struct HeadersRouter {
    rules: Vec<Rule>,
}

fn parse_mode(arguments: &[Field]) -> Result<(Mode, bool), String> {
    match find_field(arguments, "x-match") {
        None => Ok((Mode::All, false)),
        Some(Value::Text(text)) => match text.as_str() {
            "all" => Ok((Mode::All, false)),
            "any" => Ok((Mode::Any, false)),
            "all-with-x" => Ok((Mode::All, true)),
            "any-with-x" => Ok((Mode::Any, true)),
            other => Err(alloc::format!(
                "x-match must be all, any, all-with-x or any-with-x, not {other:?}"
            )),
        },
        Some(_) => Err("x-match must be a text value".into()),
    }
}

fn rule(binding: &Binding) -> Result<Rule, String> {
    let (mode, with_x) = parse_mode(&binding.arguments)?;
    let fields = binding
        .arguments
        .iter()
        .filter(|f| f.name != "x-match" && (with_x || !f.name.starts_with("x-")))
        .cloned()
        .collect();
    Ok(Rule { mode, fields })
}

impl Rule {
    fn matches(&self, headers: &[Field]) -> bool {
        let hit = |expected: &Field| match (find_field(headers, &expected.name), &expected.value) {
            (None, _) => false,
            (Some(_), Value::Void) => true,
            (Some(actual), wanted) => actual == wanted,
        };
        match self.mode {
            Mode::All => self.fields.iter().all(hit),
            Mode::Any => self.fields.iter().any(hit),
        }
    }
}

impl Exchange for Headers {
    type Router = HeadersRouter;

    fn describe() -> PluginInfo {
        plugin_info(
            "headers",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Exchange,
            false,
            "match message headers against binding arguments (x-match all/any[-with-x])",
        )
    }

    fn validate_binding(binding: &Binding, _exchange_arguments: &[Field]) -> Result<(), String> {
        rule(binding).map(|_| ())
    }
}

impl Router for HeadersRouter {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        // Bindings were validated when added; one that is not (an upgrade
        // changed the rules) matches nothing rather than failing every message.
        let rules = bindings
            .iter()
            .map(|b| {
                rule(b).unwrap_or(Rule {
                    mode: Mode::Any,
                    fields: Vec::new(),
                })
            })
            .collect();
        HeadersRouter { rules }
    }

    fn route(&self, message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
        Ok(self
            .rules
            .iter()
            .zip(0u32..)
            .filter(|(rule, _)| rule.matches(&message.headers))
            .map(|(_, index)| index)
            .collect())
    }
}

export_exchange!(Headers);
