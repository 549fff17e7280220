//! The headers-exchange table: x-match modes, x- arguments, presence-only
//! entries and values of every type.

use super::super::bindings::{Binding, Field, Message, Value};
use super::exchange::{ExchangeCase, Expect, message};

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A message carrying one header of every type.
fn report() -> Message {
    Message {
        headers: vec![
            Field::new("format", text("pdf")),
            Field::new("type", text("report")),
            Field::new("x-tenant", text("t1")),
            Field::new("size", Value::Int(42)),
            Field::new("urgent", Value::Boolean(true)),
            Field::new("ratio", Value::Float(0.5)),
            Field::new("blob", Value::Binary(vec![1, 2])),
            Field::new("at", Value::Timestamp(1000)),
            Field::new("tags", Value::TextList(vec!["a".into(), "b".into()])),
            Field::new("nothing", Value::Void),
        ],
        ..message("ignored")
    }
}

fn rule(mode: Option<&str>, fields: Vec<(&str, Value)>) -> Binding {
    let mut arguments: Vec<Field> = fields.into_iter().map(|(k, v)| Field::new(k, v)).collect();
    if let Some(mode) = mode {
        arguments.push(Field::new("x-match", text(mode)));
    }
    Binding {
        destination: "q".into(),
        key: String::new(),
        arguments,
    }
}

/// One binding; the report message must (or must not) match it.
fn one(name: &str, binding: Binding, matches: bool) -> ExchangeCase {
    ExchangeCase {
        name: name.into(),
        arguments: Vec::new(),
        bindings: vec![binding],
        messages: vec![(
            report(),
            Expect::Targets(if matches { vec![0] } else { vec![] }),
        )],
        rejected: Vec::new(),
    }
}

pub(crate) fn table() -> Vec<ExchangeCase> {
    let pdf = || ("format", text("pdf"));
    let mut cases = vec![
        one(
            "all (default): every entry matches",
            rule(None, vec![pdf(), ("type", text("report"))]),
            true,
        ),
        one(
            "all: one entry differs",
            rule(Some("all"), vec![pdf(), ("type", text("memo"))]),
            false,
        ),
        one(
            "any: one entry matches",
            rule(
                Some("any"),
                vec![("format", text("doc")), ("type", text("report"))],
            ),
            true,
        ),
        one(
            "any: no entry matches",
            rule(
                Some("any"),
                vec![("format", text("doc")), ("type", text("memo"))],
            ),
            false,
        ),
        one(
            "presence only: header present",
            rule(None, vec![("format", Value::Void)]),
            true,
        ),
        one(
            "presence only: header absent",
            rule(None, vec![("missing", Value::Void)]),
            false,
        ),
        one(
            "all ignores x- arguments",
            rule(Some("all"), vec![pdf(), ("x-tenant", text("t2"))]),
            true,
        ),
        one(
            "all-with-x compares x- arguments",
            rule(Some("all-with-x"), vec![pdf(), ("x-tenant", text("t2"))]),
            false,
        ),
        one(
            "all-with-x: x- argument matches",
            rule(Some("all-with-x"), vec![("x-tenant", text("t1"))]),
            true,
        ),
        one(
            "any-with-x: x- argument matches",
            rule(
                Some("any-with-x"),
                vec![("x-tenant", text("t1")), ("format", text("no"))],
            ),
            true,
        ),
        one(
            "any ignores x- arguments",
            rule(Some("any"), vec![("x-tenant", text("t1"))]),
            false,
        ),
        one(
            "all with no entries matches everything",
            rule(Some("all"), vec![]),
            true,
        ),
        one(
            "any with no entries matches nothing",
            rule(Some("any"), vec![]),
            false,
        ),
        one(
            "int equal",
            rule(None, vec![("size", Value::Int(42))]),
            true,
        ),
        one(
            "int differs",
            rule(None, vec![("size", Value::Int(43))]),
            false,
        ),
        one(
            "types differ: text 42 is not int 42",
            rule(None, vec![("size", text("42"))]),
            false,
        ),
        one(
            "bool",
            rule(None, vec![("urgent", Value::Boolean(true))]),
            true,
        ),
        one(
            "float",
            rule(None, vec![("ratio", Value::Float(0.5))]),
            true,
        ),
        one(
            "binary",
            rule(None, vec![("blob", Value::Binary(vec![1, 2]))]),
            true,
        ),
        one(
            "timestamp",
            rule(None, vec![("at", Value::Timestamp(1000))]),
            true,
        ),
        one(
            "text list",
            rule(
                None,
                vec![("tags", Value::TextList(vec!["a".into(), "b".into()]))],
            ),
            true,
        ),
        one(
            "void header present",
            rule(None, vec![("nothing", Value::Void)]),
            true,
        ),
        one(
            "header names are case-sensitive",
            rule(None, vec![("Format", text("pdf"))]),
            false,
        ),
    ];
    cases.push(ExchangeCase {
        name: "several bindings, one message".into(),
        arguments: Vec::new(),
        bindings: vec![
            rule(None, vec![pdf()]),
            rule(Some("any"), vec![("type", text("memo"))]),
            rule(Some("any"), vec![("type", text("report"))]),
        ],
        messages: vec![
            (report(), Expect::Targets(vec![0, 2])),
            (message("bare"), Expect::Targets(vec![])),
        ],
        rejected: Vec::new(),
    });
    cases.push(ExchangeCase {
        name: "invalid x-match is refused".into(),
        arguments: Vec::new(),
        bindings: vec![rule(Some("some"), vec![pdf()]), rule(None, vec![pdf()])],
        messages: vec![(report(), Expect::Targets(vec![0]))],
        rejected: vec![0],
    });
    cases
}
