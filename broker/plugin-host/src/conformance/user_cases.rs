//! Cases a plugin author writes for their own plugin (a TOML file given to
//! `switchyard plugin test --cases`), run through the real host after the
//! conformance suite. Cases run in file order against one loaded instance,
//! so a filter sees the messages of earlier cases.
//!
//! ```toml
//! [config]                      # the plugin's settings for these cases
//! [exchange-arguments]          # exchange plugins: the exchange's arguments
//! [[bindings]]                  # exchange plugins: the bindings
//! destination = "small"
//! key = ""
//! arguments = { min = 0, max = 99 }
//!
//! [[cases]]
//! name = "5 is small"
//! routing-key = "orders"
//! headers = { amount = 5 }
//! message-id = "m-1"            # optional; also body = "…"
//! expect = ["small"]            # exchange: destinations (any order), or "error"
//! # filter: "accept" | "duplicate" | "reject"
//! # set-router: "local" | "center" | "set:ID" | "reject" (with local-set = "…")
//! # dead-letter: "drop" | "republish:EXCHANGE:KEY" | "retry:MS" | "park:QUEUE"
//! #   (with queue = "…", reason = "rejected|expired|max-length|delivery-limit",
//! #    deaths = N, queue-arguments = {…})
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use super::super::PluginError;
use super::super::bindings::{
    Binding, DeathReason, DeathRecord, Decision, Field, Message, PluginKind, Properties, Value,
    Verdict,
};
use super::super::dead_letter::{DeadLetterPolicy, DeathInput, DeathNotice, PolicyAction};
use super::super::exchange::ExchangeRouter;
use super::super::policies::{MessageFilter, SetRouter};
use super::super::registry::PluginSlot;
use super::Cases;

/// A parsed cases file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserCases {
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    exchange_arguments: toml::Table,
    #[serde(default)]
    bindings: Vec<UserBinding>,
    cases: Vec<UserCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBinding {
    destination: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    arguments: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UserCase {
    name: String,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    headers: toml::Table,
    message_id: Option<String>,
    #[serde(default)]
    body: String,
    expect: toml::Value,
    #[serde(default)]
    local_set: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    queue_arguments: toml::Table,
    reason: Option<String>,
    deaths: Option<u32>,
}

impl FromStr for UserCases {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let cases: UserCases = toml::from_str(text)?;
        if cases.cases.is_empty() {
            anyhow::bail!("no [[cases]]");
        }
        // Surface value errors now rather than as failed cases.
        fields(&cases.exchange_arguments).map_err(anyhow::Error::msg)?;
        for binding in &cases.bindings {
            fields(&binding.arguments).map_err(anyhow::Error::msg)?;
        }
        for case in &cases.cases {
            fields(&case.headers).map_err(|e| anyhow::anyhow!("case {:?}: {e}", case.name))?;
            fields(&case.queue_arguments)
                .map_err(|e| anyhow::anyhow!("case {:?}: {e}", case.name))?;
        }
        Ok(cases)
    }
}

fn value(name: &str, value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(text) => Value::Text(text.clone()),
        toml::Value::Integer(n) => Value::Int(*n),
        toml::Value::Float(x) => Value::Float(*x),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Array(items) => Value::TextList(
            items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.clone()),
                    _ => Err(format!("{name}: lists may hold only strings")),
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("{name}: unsupported value {other}")),
    })
}

fn fields(table: &toml::Table) -> Result<Vec<Field>, String> {
    table
        .iter()
        .map(|(name, v)| {
            Ok(Field {
                name: name.clone(),
                value: value(name, v)?,
            })
        })
        .collect()
}

impl UserCase {
    fn message(&self) -> (Message, Bytes) {
        let message = Message {
            routing_key: self.routing_key.clone(),
            headers: fields(&self.headers).unwrap_or_default(),
            properties: Properties {
                message_id: self.message_id.clone(),
                ..Properties::default()
            },
            body_size: self.body.len() as u64,
        };
        (message, Bytes::from(self.body.clone()))
    }

    fn expected_text(&self) -> Result<&str, String> {
        self.expect.as_str().ok_or_else(|| {
            format!(
                "expect must be text for this kind of plugin, not {}",
                self.expect
            )
        })
    }
}

/// Runs `cases` against `slot` (the plugin loaded with `cases.config`).
pub(super) fn run(
    slot: Arc<PluginSlot>,
    cases: &UserCases,
    results: &mut Cases,
) -> Result<(), PluginError> {
    match slot.kind() {
        PluginKind::Exchange => {
            let router = ExchangeRouter::new(
                slot,
                fields(&cases.exchange_arguments).map_err(PluginError::invalid)?,
            )?
            .without_decision_cache();
            let mut bindings = Vec::new();
            for b in &cases.bindings {
                let binding = Binding {
                    destination: b.destination.clone(),
                    key: b.key.clone(),
                    arguments: fields(&b.arguments).map_err(PluginError::invalid)?,
                };
                if let Err(e) = router.validate_binding(&binding) {
                    results.check(
                        format!("binding to {} is accepted", b.destination),
                        Err(e.to_string()),
                    );
                }
                bindings.push(binding);
            }
            router.set_bindings(bindings);
            for case in &cases.cases {
                results.check(format!("user: {}", case.name), exchange_case(&router, case));
            }
        }
        PluginKind::Filter => {
            let filter = MessageFilter::new(slot)?;
            for case in &cases.cases {
                let outcome = case.expected_text().and_then(|expected| {
                    let (message, body) = case.message();
                    let verdict = filter.check(&message, &body).map_err(|e| e.to_string())?;
                    let got = match &verdict {
                        Verdict::Accept => "accept".to_string(),
                        Verdict::Duplicate => "duplicate".to_string(),
                        Verdict::Reject(_) => "reject".to_string(),
                    };
                    compare(expected, &got, &format!("{verdict:?}"))
                });
                results.check(format!("user: {}", case.name), outcome);
            }
        }
        PluginKind::SetRouter => {
            let router = SetRouter::new(slot)?;
            for case in &cases.cases {
                let outcome = case.expected_text().and_then(|expected| {
                    let (message, body) = case.message();
                    let decision = router
                        .route(&message, &body, &case_table(&case.local_set))
                        .map_err(|e| e.to_string())?;
                    let got = match &decision {
                        Decision::Local => "local".to_string(),
                        Decision::Center => "center".to_string(),
                        Decision::Set(id) => format!("set:{id}"),
                        Decision::Reject(_) => "reject".to_string(),
                    };
                    compare(expected, &got, &format!("{decision:?}"))
                });
                results.check(format!("user: {}", case.name), outcome);
            }
        }
        PluginKind::DeadLetter => {
            let policy = DeadLetterPolicy::new(slot)?;
            for case in &cases.cases {
                results.check(
                    format!("user: {}", case.name),
                    dead_letter_case(&policy, case),
                );
            }
        }
    }
    Ok(())
}

fn compare(expected: &str, got: &str, detail: &str) -> Result<(), String> {
    if expected == got {
        Ok(())
    } else {
        Err(format!("expected {expected}, got {detail}"))
    }
}

fn exchange_case(router: &ExchangeRouter, case: &UserCase) -> Result<(), String> {
    let (message, body) = case.message();
    let routed = router.route(&message, &body).map_err(|e| e.to_string())?;
    let table = routed.table.clone();
    let result = routed
        .results
        .into_iter()
        .next()
        .expect("one result per message");
    match (&case.expect, result) {
        (toml::Value::String(s), Err(_)) if s == "error" => Ok(()),
        (toml::Value::String(s), Ok(targets)) if s == "error" => Err(format!(
            "expected the plugin to refuse the message, but it routed to {:?}",
            destinations(&table.bindings, &targets)
        )),
        (toml::Value::Array(expected), result) => {
            let mut expected: Vec<String> = expected
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or("expect lists destinations")
                })
                .collect::<Result<_, _>>()?;
            let targets = result.map_err(|reason| format!("the plugin refused it: {reason}"))?;
            let mut got = destinations(&table.bindings, &targets);
            expected.sort();
            got.sort();
            if expected == got {
                Ok(())
            } else {
                Err(format!("expected {expected:?}, routed to {got:?}"))
            }
        }
        (other, _) => Err(format!(
            "expect must be a list of destinations or \"error\", not {other}"
        )),
    }
}

fn destinations(bindings: &[Binding], targets: &[u32]) -> Vec<String> {
    targets
        .iter()
        .map(|&i| bindings[i as usize].destination.clone())
        .collect()
}

fn dead_letter_case(policy: &DeadLetterPolicy, case: &UserCase) -> Result<(), String> {
    let expected = case.expected_text()?;
    let reason = match case.reason.as_deref().unwrap_or("rejected") {
        "rejected" => DeathReason::Rejected,
        "expired" => DeathReason::Expired,
        "max-length" => DeathReason::MaxLength,
        "delivery-limit" => DeathReason::DeliveryLimit,
        other => return Err(format!("unknown reason {other:?}")),
    };
    let history = vec![DeathRecord {
        queue: case.queue.clone(),
        reason,
        count: case.deaths.unwrap_or(1),
        time: 0,
        exchange: String::new(),
        routing_keys: vec![case.routing_key.clone()],
    }];
    let queue_arguments = fields(&case.queue_arguments)?;
    let (message, body) = case.message();
    // The broker asks through `decide_batch`; check that answer, and that
    // `decide` agrees with it wherever `decide` can say the same.
    let batch = policy
        .decide_batch(
            &case.queue,
            &queue_arguments,
            &[DeathInput {
                message: message.clone(),
                reason,
                history: history.clone(),
            }],
            std::slice::from_ref(&body),
        )
        .map_err(|e| e.to_string())?;
    let got = match &batch[..] {
        [PolicyAction::Drop] => "drop".to_string(),
        [
            PolicyAction::Republish {
                exchange,
                routing_key,
            },
        ] => format!("republish:{exchange}:{routing_key}"),
        [PolicyAction::Retry { delay_ms }] => format!("retry:{delay_ms}"),
        [PolicyAction::Park { queue }] => format!("park:{queue}"),
        _ => unreachable!("decide_batch checks one action per death"),
    };
    let single = policy
        .decide(
            &message,
            &body,
            &DeathNotice {
                queue: &case.queue,
                queue_arguments: &queue_arguments,
                reason,
                history: &history,
            },
        )
        .map_err(|e| e.to_string())?;
    let single = PolicyAction::from(single);
    if !matches!(batch[0], PolicyAction::Park { .. }) && single != batch[0] {
        return Err(format!(
            "decide-batch answered {got}, but decide answered {single:?}"
        ));
    }
    compare(expected, &got, &got)
}

/// The table a user case's SET router is given: only the local cell (a
/// router that routes against the broker's table sees no ranges).
fn case_table(local_set: &str) -> super::super::policies::SetTable {
    super::super::policies::SetTable {
        local_cell: local_set.into(),
        ..Default::default()
    }
}
