//! The dead-letter table: RabbitMQ's dead-letter-exchange behaviour and the
//! retry-with-exponential-backoff strategy of the built-in policy.

use bytes::Bytes;

use super::super::PluginError;
use super::super::bindings::{Action, DeathReason, DeathRecord, Field, Republish, Retry, Value};
use super::super::dead_letter::{DeadLetterPolicy, DeathInput, DeathNotice, PolicyAction};
use super::exchange::message;
use super::{Cases, Subject};

struct DeadLetterCase {
    name: &'static str,
    arguments: Vec<(&'static str, Value)>,
    reason: DeathReason,
    /// (queue, count) entries of the history, oldest first.
    history: Vec<(&'static str, u32)>,
    expect: Action,
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn republish(exchange: &str, routing_key: &str) -> Action {
    Action::Republish(Republish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
    })
}

fn retry(delay_ms: u64) -> Action {
    Action::Retry(Retry { delay_ms })
}

fn retrying() -> Vec<(&'static str, Value)> {
    vec![
        ("x-dead-letter-strategy", text("retry")),
        ("x-retry-max", Value::Int(3)),
        ("x-retry-initial-delay-ms", Value::Int(100)),
        ("x-retry-multiplier", Value::Int(2)),
    ]
}

fn table() -> Vec<DeadLetterCase> {
    let dlx = || ("x-dead-letter-exchange", text("dlx"));
    let with_dlx = |mut args: Vec<(&'static str, Value)>| {
        args.push(dlx());
        args
    };
    vec![
        DeadLetterCase {
            name: "republish to the DLX with the original key",
            arguments: vec![dlx()],
            reason: DeathReason::Rejected,
            history: vec![("orders", 1)],
            expect: republish("dlx", "order.created"),
        },
        DeadLetterCase {
            name: "republish with the configured dead-letter routing key",
            arguments: vec![dlx(), ("x-dead-letter-routing-key", text("dead"))],
            reason: DeathReason::Expired,
            history: vec![("orders", 1)],
            expect: republish("dlx", "dead"),
        },
        DeadLetterCase {
            name: "no DLX configured: drop",
            arguments: vec![],
            reason: DeathReason::MaxLength,
            history: vec![("orders", 1)],
            expect: Action::Drop,
        },
        DeadLetterCase {
            name: "retry: first death waits the initial delay",
            arguments: retrying(),
            reason: DeathReason::Rejected,
            history: vec![("orders", 1)],
            expect: retry(100),
        },
        DeadLetterCase {
            name: "retry: delay doubles",
            arguments: retrying(),
            reason: DeathReason::Rejected,
            history: vec![("orders", 2)],
            expect: retry(200),
        },
        DeadLetterCase {
            name: "retry: last attempt",
            arguments: retrying(),
            reason: DeathReason::Rejected,
            history: vec![("orders", 3)],
            expect: retry(400),
        },
        DeadLetterCase {
            name: "retry: gives up after N deaths, to the DLX",
            arguments: with_dlx(retrying()),
            reason: DeathReason::Rejected,
            history: vec![("orders", 4)],
            expect: republish("dlx", "order.created"),
        },
        DeadLetterCase {
            name: "retry: gives up after N deaths, dropped without DLX",
            arguments: retrying(),
            reason: DeathReason::DeliveryLimit,
            history: vec![("orders", 4)],
            expect: Action::Drop,
        },
        DeadLetterCase {
            name: "retry: only deaths in this queue count",
            arguments: retrying(),
            reason: DeathReason::Rejected,
            history: vec![("other", 7), ("orders", 1)],
            expect: retry(100),
        },
        DeadLetterCase {
            name: "retry: delay capped at the maximum",
            arguments: vec![
                ("x-dead-letter-strategy", text("retry")),
                ("x-retry-max", Value::Int(10)),
                ("x-retry-initial-delay-ms", Value::Int(1000)),
                ("x-retry-multiplier", Value::Int(10)),
                ("x-retry-max-delay-ms", Value::Int(5000)),
            ],
            reason: DeathReason::Rejected,
            history: vec![("orders", 3)],
            expect: retry(5000),
        },
    ]
}

pub(crate) fn run(subject: &Subject<'_>, cases: &mut Cases) -> Result<bool, PluginError> {
    let known = subject.claims("dead-letter");
    let policy = DeadLetterPolicy::new(subject.slot()?)?;
    for case in table() {
        let arguments: Vec<Field> = case
            .arguments
            .iter()
            .map(|(k, v)| Field::new(*k, v.clone()))
            .collect();
        let history: Vec<DeathRecord> = case
            .history
            .iter()
            .map(|(queue, count)| DeathRecord {
                queue: (*queue).into(),
                reason: case.reason,
                count: *count,
                time: 1_700_000_000_000,
                exchange: "orders-exchange".into(),
                routing_keys: vec!["order.created".into()],
            })
            .collect();
        let notice = DeathNotice {
            queue: "orders",
            queue_arguments: &arguments,
            reason: case.reason,
            history: &history,
        };
        let body = Bytes::from_static(b"{}");
        let decided = policy.decide(&message("order.created"), &body, &notice);
        let outcome = decided
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|action| {
                if !known || *action == case.expect {
                    Ok(())
                } else {
                    Err(format!("expected {:?}, got {action:?}", case.expect))
                }
            });
        cases.check(case.name, outcome);
        // The broker asks through `decide-batch` (or `decide` per death when
        // a plugin lacks it): a batch must answer what `decide` answers.
        let single = decided.map(PolicyAction::from).ok();
        let death = DeathInput {
            message: message("order.created"),
            reason: case.reason,
            history,
        };
        let batch = policy
            .decide_batch(
                "orders",
                &arguments,
                &[death.clone(), death],
                &[body.clone(), body],
            )
            .map_err(|e| e.to_string())
            .and_then(|actions| match &single {
                Some(single) if actions.iter().all(|a| a == single) => Ok(()),
                _ => Err(format!(
                    "a batch of two such deaths got {actions:?}; `decide` answered {single:?}"
                )),
            });
        cases.check(format!("{} (as a batch)", case.name), batch);
    }
    Ok(known)
}
