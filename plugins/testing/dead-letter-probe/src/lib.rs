//! `dead-letter-probe`: a test dead-letter policy whose answers are chosen
//! by its configuration, used by the host's batch tests. Not a built-in.
//!
//! `mode` is one of `park:NAME` (park every death in queue NAME),
//! `short-batch` (a batch answer with one action too few), `empty-park`
//! (park in a queue with an empty name), `trap` (panics) or `spin` (never
//! returns: the host's call deadline ends it); anything else drops. `decide` answers the same as a batch of one.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

use switchyard_plugin::host::config;
use switchyard_plugin::{
    Action, BatchAction, BatchDeath, Body, DeadLetterPolicy, Death, Field, Message, PluginInfo,
    PluginKind, export_dead_letter, plugin_info,
};

pub struct DeadLetterProbe;

fn action(mode: &str) -> BatchAction {
    match mode {
        "empty-park" => BatchAction::Park("".into()),
        "trap" => panic!("dead-letter-probe asked to trap"),
        "spin" => loop {
            core::hint::spin_loop();
        },
        _ => match mode.strip_prefix("park:") {
            Some(queue) => BatchAction::Park(queue.into()),
            None => BatchAction::Drop,
        },
    }
}

impl DeadLetterPolicy for DeadLetterProbe {
    fn describe() -> PluginInfo {
        plugin_info(
            "dead-letter-probe",
            "0.0.0",
            PluginKind::DeadLetter,
            false,
            "test dead-letter policy: answers chosen by configuration",
        )
    }

    // `decide` has no park: a single decision parks nothing, it drops.
    fn decide(_message: &Message, _body: &Body<'_>, _death: &Death<'_>) -> Action {
        match action(&config::get("mode").unwrap_or_default()) {
            BatchAction::Republish(target) => Action::Republish(target),
            BatchAction::Retry(retry) => Action::Retry(retry),
            BatchAction::Drop | BatchAction::Park(_) => Action::Drop,
        }
    }

    fn decide_batch(
        _queue: &str,
        _queue_arguments: &[Field],
        deaths: &[BatchDeath<'_>],
    ) -> Vec<BatchAction> {
        let mode = config::get("mode").unwrap_or_default();
        let answered = match mode.as_str() {
            "short-batch" => deaths.len().saturating_sub(1),
            _ => deaths.len(),
        };
        (0..answered).map(|_| action(&mode)).collect()
    }
}

export_dead_letter!(DeadLetterProbe);
