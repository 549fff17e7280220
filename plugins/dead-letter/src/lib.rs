//! `dead-letter`: the default dead-letter policy.
//!
//! Strategy `dlx` (default, RabbitMQ's behaviour): republish to the queue's
//! `x-dead-letter-exchange`, with `x-dead-letter-routing-key` if set or the
//! message's own routing key; drop when no exchange is configured.
//!
//! Strategy `retry` (`x-dead-letter-strategy = retry`): redeliver to the same
//! queue after an exponentially growing delay — `x-retry-initial-delay-ms`
//! (default 1000) times `x-retry-multiplier` (default 2) per earlier death,
//! capped at `x-retry-max-delay-ms` (default 3600000) — until the message has
//! died `x-retry-max` times (default 5) in this queue; then fall back to the
//! `dlx` behaviour.
#![no_std]

extern crate alloc;

use alloc::string::String;

use switchyard_plugin::dead_letter::{Republish, Retry};
use switchyard_plugin::{
    Action, Body, DeadLetterPolicy, Death, Field, Message, PluginInfo, PluginKind, Value,
    export_dead_letter, find_field, plugin_info,
};

pub struct DefaultDeadLetter;

fn text<'a>(arguments: &'a [Field], name: &str) -> Option<&'a str> {
    match find_field(arguments, name) {
        Some(Value::Text(t)) => Some(t.as_str()),
        _ => None,
    }
}

fn number(arguments: &[Field], name: &str, default: u64) -> u64 {
    match find_field(arguments, name) {
        Some(Value::Int(i)) if *i >= 0 => *i as u64,
        Some(Value::Text(t)) => t.trim().parse().unwrap_or(default),
        _ => default,
    }
}

/// How many times the message has died in `queue` (this death included).
fn deaths_in(death: &Death<'_>) -> u64 {
    death
        .history
        .iter()
        .filter(|record| record.queue == death.queue)
        .map(|record| u64::from(record.count))
        .sum()
}

fn republish_or_drop(message: &Message, arguments: &[Field]) -> Action {
    match text(arguments, "x-dead-letter-exchange") {
        Some(exchange) => Action::Republish(Republish {
            exchange: exchange.into(),
            routing_key: text(arguments, "x-dead-letter-routing-key")
                .map(String::from)
                .unwrap_or_else(|| message.routing_key.clone()),
        }),
        None => Action::Drop,
    }
}

/// The delay before retry number `attempt` (1-based).
pub fn backoff_ms(initial: u64, multiplier: u64, max: u64, attempt: u64) -> u64 {
    let mut delay = initial;
    for _ in 1..attempt {
        delay = delay.saturating_mul(multiplier);
        if delay >= max {
            return max;
        }
    }
    delay.min(max)
}

impl DeadLetterPolicy for DefaultDeadLetter {
    fn describe() -> PluginInfo {
        plugin_info(
            "dead-letter",
            env!("CARGO_PKG_VERSION"),
            PluginKind::DeadLetter,
            false,
            "republish to x-dead-letter-exchange, or retry with exponential backoff",
        )
    }

    fn decide(message: &Message, _body: &Body<'_>, death: &Death<'_>) -> Action {
        let arguments = death.queue_arguments;
        if text(arguments, "x-dead-letter-strategy") == Some("retry") {
            let attempts = deaths_in(death);
            let max_attempts = number(arguments, "x-retry-max", 5);
            if attempts <= max_attempts {
                return Action::Retry(Retry {
                    delay_ms: backoff_ms(
                        number(arguments, "x-retry-initial-delay-ms", 1000),
                        number(arguments, "x-retry-multiplier", 2),
                        number(arguments, "x-retry-max-delay-ms", 3_600_000),
                        attempts,
                    ),
                });
            }
        }
        republish_or_drop(message, arguments)
    }
}

export_dead_letter!(DefaultDeadLetter);
