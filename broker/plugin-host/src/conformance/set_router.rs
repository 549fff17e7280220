//! The SET router table: slot = FNV-1a-64(variable) mod 10000, ranges,
//! allow-lists, CENTER or reject for missing variables.

use bytes::Bytes;

use super::super::PluginError;
use super::super::bindings::{Decision, Field, Message, Value};
use super::super::policies::{SetRouter, SetTable};
use super::exchange::message;
use super::{Cases, Subject};

/// The documented slot function, restated here as the specification.
fn slot(variable: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in variable.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 10_000
}

fn user(id: Option<&str>) -> Message {
    Message {
        headers: id
            .map(|id| vec![Field::new("x-user-id", Value::Text(id.into()))])
            .unwrap_or_default(),
        ..message("k")
    }
}

const TWO_SETS: &[(&str, &str)] = &[
    ("sets", "set-a=0-4999; set-b=5000-9999"),
    ("allow.set-c", "vip1, vip2"),
];

/// The broker's SET table equal to a router configuration: a router that
/// routes batches against the broker's table (`set-router-batch`) must
/// decide as one reading the same table from its config.
fn broker_table(config: &[(&str, &str)]) -> SetTable {
    let mut table = SetTable {
        local_cell: "set-a".into(),
        ..SetTable::default()
    };
    for (key, value) in config {
        if *key == "sets" {
            for entry in value.split(';').map(str::trim) {
                let (set, range) = entry.split_once('=').expect("a set=low-high entry");
                let (low, high) = range.split_once('-').expect("a low-high range");
                table.ranges.push((
                    set.trim().into(),
                    low.trim().parse().expect("a slot"),
                    high.trim().parse().expect("a slot"),
                ));
            }
        } else if let Some(cell) = key.strip_prefix("allow.") {
            for value in value.split(',').map(str::trim) {
                table.pins.push((value.into(), cell.into()));
            }
        }
    }
    table
}

pub(crate) fn run(subject: &Subject<'_>, cases: &mut Cases) -> Result<bool, PluginError> {
    let known = subject.claims("set-router");
    let configs: [(&str, &[(&str, &str)]); 3] = [
        ("two-sets", TWO_SETS),
        (
            "reject-missing",
            &[("sets", "set-a=0-99"), ("missing", "reject")],
        ),
        (
            "custom-header",
            &[("sets", "set-a=0-9999"), ("variable-header", "tenant")],
        ),
    ];
    let mut routers = Vec::new();
    for (label, config) in configs {
        let router = SetRouter::new(subject.variant(label, config)?)?;
        routers.push((router, broker_table(config)));
    }
    let body = Bytes::new();
    let mut expect = |name: String,
                      (router, table): &(SetRouter, SetTable),
                      message: Message,
                      want: fn(&Decision, &str) -> bool,
                      arg: String| {
        let outcome = router
            .route(&message, &body, table)
            .map_err(|e| e.to_string())
            .and_then(|d| {
                if !known || want(&d, &arg) {
                    Ok(())
                } else {
                    Err(format!("got {d:?}"))
                }
            });
        cases.check(name, outcome);
    };

    for id in ["u1", "u2", "alice", "bob", "订单用户", "42"] {
        let (name, wanted) = if slot(id) < 5000 {
            (
                format!("user {id} (slot {}) is local to set-a", slot(id)),
                "local",
            )
        } else {
            (
                format!("user {id} (slot {}) belongs to set-b", slot(id)),
                "set-b",
            )
        };
        expect(
            name,
            &routers[0],
            user(Some(id)),
            |d, w| match d {
                Decision::Local => w == "local",
                Decision::Set(s) => s == w,
                _ => false,
            },
            wanted.into(),
        );
    }
    expect(
        "allow-list pins vip1 to set-c".into(),
        &routers[0],
        user(Some("vip1")),
        |d, _| *d == Decision::Set("set-c".into()),
        String::new(),
    );
    expect(
        "missing variable goes to CENTER".into(),
        &routers[0],
        user(None),
        |d, _| *d == Decision::Center,
        String::new(),
    );
    expect(
        "missing variable rejected when missing=reject".into(),
        &routers[1],
        user(None),
        |d, _| matches!(d, Decision::Reject(_)),
        String::new(),
    );
    let uncovered = (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| slot(u) > 99)
        .unwrap();
    expect(
        format!("slot {} covered by no SET is rejected", slot(&uncovered)),
        &routers[1],
        user(Some(&uncovered)),
        |d, _| matches!(d, Decision::Reject(_)),
        String::new(),
    );
    let tenant = Message {
        headers: vec![Field::new("tenant", Value::Int(7))],
        ..message("k")
    };
    expect(
        "variable header is configurable (integer value)".into(),
        &routers[2],
        tenant,
        |d, _| *d == Decision::Local,
        String::new(),
    );
    Ok(known)
}
