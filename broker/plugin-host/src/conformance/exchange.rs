//! Exchange tables (direct, topic, fanout, consistent-hash; headers lives in
//! its own file) and the contract every exchange plugin is held to.

use bytes::Bytes;

use super::super::PluginError;
use super::super::bindings::{Binding, Field, Message, Properties, Value};
use super::super::exchange::ExchangeRouter;
use super::{Cases, Subject};

/// What routing one message must produce.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// Exactly these binding indices (in any order).
    Targets(Vec<u32>),
    /// Exactly one binding, whichever.
    ExactlyOne,
    /// Anything, as long as the contract holds.
    Any,
}

pub(crate) struct ExchangeCase {
    pub name: String,
    pub arguments: Vec<Field>,
    pub bindings: Vec<Binding>,
    pub messages: Vec<(Message, Expect)>,
    /// Indices of bindings the plugin must refuse in `validate-binding`.
    pub rejected: Vec<usize>,
}

pub(crate) fn binding(destination: &str, key: &str) -> Binding {
    Binding {
        destination: destination.into(),
        key: key.into(),
        arguments: Vec::new(),
    }
}

pub(crate) fn message(routing_key: &str) -> Message {
    Message::with_key(routing_key)
}

pub(crate) fn case(name: &str, keys: &[&str], messages: Vec<(Message, Expect)>) -> ExchangeCase {
    ExchangeCase {
        name: name.into(),
        arguments: Vec::new(),
        bindings: keys
            .iter()
            .enumerate()
            .map(|(i, k)| binding(&format!("q{i}"), k))
            .collect(),
        messages,
        rejected: Vec::new(),
    }
}

fn to(targets: &[u32]) -> Expect {
    Expect::Targets(targets.to_vec())
}

fn routes(key: &str, targets: &[u32]) -> (Message, Expect) {
    (message(key), to(targets))
}

fn direct() -> Vec<ExchangeCase> {
    let thousand: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let thousand: Vec<&str> = thousand.iter().map(String::as_str).collect();
    vec![
        case(
            "equal key matches",
            &["a", "b"],
            vec![routes("a", &[0]), routes("b", &[1])],
        ),
        case("no binding for the key", &["a"], vec![routes("c", &[])]),
        case("empty key", &["", "a"], vec![routes("", &[0])]),
        case(
            "several bindings, same key",
            &["a", "a", "b"],
            vec![routes("a", &[0, 1])],
        ),
        case("keys are case-sensitive", &["a"], vec![routes("A", &[])]),
        case(
            "no patterns in direct",
            &["a.*", "#"],
            vec![routes("a.b", &[]), routes("a.*", &[0])],
        ),
        case(
            "UTF-8 keys",
            &["заказ.新", "x"],
            vec![routes("заказ.新", &[0])],
        ),
        case("no bindings", &[], vec![routes("a", &[])]),
        case(
            "1000 bindings",
            &thousand,
            vec![routes("k567", &[567]), routes("k1000", &[])],
        ),
    ]
}

fn topic() -> Vec<ExchangeCase> {
    let mut thousand: Vec<String> = (0..1000).map(|i| format!("s{i}.*")).collect();
    thousand.push("#.hot".into());
    let thousand: Vec<&str> = thousand.iter().map(String::as_str).collect();
    vec![
        case(
            "literal pattern",
            &["a.b.c"],
            vec![routes("a.b.c", &[0]), routes("a.b", &[])],
        ),
        case(
            "* matches exactly one word",
            &["a.*.c"],
            vec![
                routes("a.b.c", &[0]),
                routes("a.c", &[]),
                routes("a.b.b.c", &[]),
            ],
        ),
        case(
            "a.b.* does not match a.b",
            &["a.b.*"],
            vec![routes("a.b", &[]), routes("a.b.c", &[0])],
        ),
        case(
            "# matches zero or more words",
            &["a.#"],
            vec![
                routes("a", &[0]),
                routes("a.b", &[0]),
                routes("a.b.c", &[0]),
                routes("b.a", &[]),
            ],
        ),
        case(
            "# alone behaves like fanout",
            &["#"],
            vec![routes("", &[0]), routes("x", &[0]), routes("x.y.z", &[0])],
        ),
        case(
            "# in front",
            &["#.c"],
            vec![routes("c", &[0]), routes("a.b.c", &[0]), routes("c.d", &[])],
        ),
        case(
            "# in the middle",
            &["a.#.c"],
            vec![
                routes("a.c", &[0]),
                routes("a.b.c", &[0]),
                routes("a.b.d.c", &[0]),
                routes("a.b", &[]),
            ],
        ),
        case(
            "* alone",
            &["*"],
            vec![routes("a", &[0]), routes("a.b", &[])],
        ),
        case(
            "*.*",
            &["*.*"],
            vec![routes("a.b", &[0]), routes("a", &[]), routes("a.b.c", &[])],
        ),
        case(
            "overlapping patterns each match once",
            &["a.*", "a.#", "#", "b.*", "a.x"],
            vec![routes("a.x", &[0, 1, 2, 4])],
        ),
        case("empty routing key", &["", "a"], vec![routes("", &[0])]),
        case(
            "UTF-8 words",
            &["新.*", "*.闻"],
            vec![routes("新.闻", &[0, 1]), routes("旧.报", &[])],
        ),
        case(
            "1000 bindings",
            &thousand,
            vec![
                routes("s42.x", &[42]),
                routes("s7.hot", &[7, 1000]),
                routes("none", &[]),
            ],
        ),
    ]
}

fn fanout() -> Vec<ExchangeCase> {
    let thousand: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let thousand: Vec<&str> = thousand.iter().map(String::as_str).collect();
    let all: Vec<u32> = (0..1000).collect();
    vec![
        case(
            "every binding, any key",
            &["a", "b", ""],
            vec![routes("zzz", &[0, 1, 2]), routes("", &[0, 1, 2])],
        ),
        case("no bindings", &[], vec![routes("a", &[])]),
        case("1000 bindings", &thousand, vec![routes("x", &all)]),
    ]
}

fn consistent_hash() -> Vec<ExchangeCase> {
    let keys: Vec<(Message, Expect)> = (0..200)
        .map(|i| (message(&format!("order-{i}")), Expect::ExactlyOne))
        .collect();
    let with_header = |user: Option<&str>| Message {
        headers: user
            .map(|u| vec![Field::new("user", Value::Text(u.into()))])
            .unwrap_or_default(),
        ..message("ignored")
    };
    let with_id = |id: Option<&str>| Message {
        properties: Properties {
            message_id: id.map(String::from),
            ..Properties::default()
        },
        ..message("ignored")
    };
    let mut bad_weights = case(
        "weights must be positive integers",
        &["10", "abc", "0", "-3"],
        Vec::new(),
    );
    bad_weights.rejected = vec![1, 2, 3];
    let mut by_header = case(
        "hash-header picks the header",
        &["10", "10"],
        vec![
            (with_header(Some("alice")), Expect::ExactlyOne),
            (with_header(None), to(&[])),
        ],
    );
    by_header.arguments = vec![Field::new("hash-header", Value::Text("user".into()))];
    let mut by_id = case(
        "hash-property message_id",
        &["10", "10"],
        vec![
            (with_id(Some("m-1")), Expect::ExactlyOne),
            (with_id(None), to(&[])),
        ],
    );
    by_id.arguments = vec![Field::new(
        "hash-property",
        Value::Text("message_id".into()),
    )];
    vec![
        case(
            "each message goes to exactly one binding",
            &["10", "10", "20"],
            keys,
        ),
        case("no bindings", &[], vec![routes("a", &[])]),
        bad_weights,
        by_header,
        by_id,
    ]
}

/// Cases any exchange must survive, whatever its semantics.
fn contract_only() -> Vec<ExchangeCase> {
    let any = |key: &str| (message(key), Expect::Any);
    vec![
        case("no bindings", &[], vec![any("a"), any("")]),
        case(
            "a few bindings",
            &["a", "a.*", "#", "1"],
            vec![any("a"), any("a.b"), any(""), any("新")],
        ),
    ]
}

/// The table for an exchange type, if there is one.
pub(crate) fn table(semantics: &str) -> Option<Vec<ExchangeCase>> {
    match semantics {
        "direct" => Some(direct()),
        "topic" => Some(topic()),
        "fanout" => Some(fanout()),
        "headers" => Some(super::headers::table()),
        "consistent-hash" => Some(consistent_hash()),
        _ => None,
    }
}

/// Runs the table for `semantics` (or the contract-only cases) against the
/// subject; returns whether a table existed.
pub(crate) fn run(subject: &Subject<'_>, cases: &mut Cases) -> Result<bool, PluginError> {
    let table = table(subject.semantics());
    let known = table.is_some();
    let slot = subject.slot()?;
    for case in table.unwrap_or_else(contract_only) {
        let router = ExchangeRouter::new(slot.clone(), case.arguments.clone())?;
        cases.check(case.name.clone(), run_case(&router, &case));
    }
    Ok(known)
}

fn run_case(router: &ExchangeRouter, case: &ExchangeCase) -> Result<(), String> {
    // Contract-only cases expect nothing in particular: a plugin may refuse
    // their bindings and messages, as long as it does so consistently.
    let contract_only = case.messages.iter().all(|(_, e)| matches!(e, Expect::Any));
    let mut refused = case.rejected.clone();
    for (i, binding) in case.bindings.iter().enumerate() {
        let verdict = router.validate_binding(binding);
        match (case.rejected.contains(&i), verdict) {
            (false, Err(PluginError::Rejected { .. })) if contract_only => refused.push(i),
            (true, Ok(())) => {
                return Err(format!("binding {i} ({:?}) should be refused", binding.key));
            }
            (false, Err(e)) => return Err(format!("binding {i} ({:?}) refused: {e}", binding.key)),
            (true, Err(PluginError::Rejected { .. })) | (false, Ok(())) => {}
            (true, Err(e)) => {
                return Err(format!(
                    "binding {i}: plugin failed instead of refusing: {e}"
                ));
            }
        }
    }
    let accepted: Vec<Binding> = case
        .bindings
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused.contains(i))
        .map(|(_, b)| b.clone())
        .collect();
    router.set_bindings(accepted);

    let messages: Vec<Message> = case.messages.iter().map(|(m, _)| m.clone()).collect();
    let bodies: Vec<Bytes> = messages
        .iter()
        .map(|_| Bytes::from_static(b"body"))
        .collect();
    let batch = router
        .route_batch(&messages, &bodies)
        .map_err(|e| e.to_string())?;
    let again = router
        .route_batch(&messages, &bodies)
        .map_err(|e| e.to_string())?;
    for (i, (message, expect)) in case.messages.iter().enumerate() {
        let single = router
            .route(message, &bodies[i])
            .map_err(|e| e.to_string())?;
        let single = &single.results[0];
        let batched = &batch.results[i];
        if single != batched {
            return Err(format!(
                "key {:?}: single call gave {single:?}, batch gave {batched:?}",
                message.routing_key
            ));
        }
        if batched != &again.results[i] {
            return Err(format!("key {:?}: not deterministic", message.routing_key));
        }
        if let Expect::Any = expect {
            continue;
        }
        let targets = batched
            .as_ref()
            .map_err(|reason| format!("key {:?}: plugin refused: {reason}", message.routing_key))?;
        let ok = match expect {
            Expect::Targets(expected) => {
                let mut expected = expected.clone();
                expected.sort_unstable();
                **targets == *expected
            }
            Expect::ExactlyOne => targets.len() == 1,
            Expect::Any => unreachable!("checked above"),
        };
        if !ok {
            return Err(format!(
                "key {:?} headers {:?}: expected {expect:?}, got {targets:?}",
                message.routing_key, message.headers
            ));
        }
    }
    Ok(())
}
