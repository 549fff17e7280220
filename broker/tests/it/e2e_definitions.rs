//! Definitions through the binary: exported from one broker, imported into
//! another (users keep their passwords), imported again without change,
//! and refused whole when they need a plugin the broker lacks.

use crate::support;

use support::{Broker, stderr};

#[test]
fn definitions_move_a_topology_and_its_users_to_another_broker() {
    let source = Broker::start();
    source.cli_ok(&["vhost", "add", "shop"]);
    // Its SET table travels too.
    source.cli_ok(&["cells", "local", "set-a"]);
    source.cli_ok(&["cells", "range", "set-a", "0-4999"]);
    source.cli_ok(&["cells", "pin", "vip", "set-a"]);
    support::add_user(
        &source,
        "carol",
        "carol-secret",
        "shop",
        ["^carol\\..*", ".*", ".*"],
    );
    source.cli_ok(&[
        "user",
        "permit",
        "guest",
        "--vhost",
        "shop",
        "--configure",
        ".*",
        "--write",
        ".*",
        "--read",
        ".*",
    ]);
    let at_shop = |broker: &Broker, args: &[&str]| {
        let out = broker.cli_as(&broker.url("guest", "guest", "shop"), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    at_shop(
        &source,
        &[
            "declare",
            "exchange",
            "events",
            "--type",
            "topic",
            "--durable",
        ],
    );
    at_shop(
        &source,
        &[
            "declare",
            "queue",
            "audit",
            "--durable",
            "--arg",
            "max-length=1000",
            "--arg",
            "queue-type=classic",
        ],
    );
    at_shop(&source, &["bind", "audit", "events", "--key", "order.#"]);
    let exported = source.cli_ok(&["definitions", "export"]);
    let definitions: serde_json::Value = serde_json::from_str(&exported).unwrap();
    assert!(
        definitions["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "topic")
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defs.json");
    std::fs::write(&file, &exported).unwrap();
    let target = Broker::start();
    let out = target.cli(&["definitions", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("created or changed"),
        "{}",
        stderr(&out)
    );
    // The same topology, and carol logs in with her password.
    let queues = at_shop(&target, &["list", "queues", "--json"]);
    assert!(
        queues.contains("\"name\":\"audit\"") && queues.contains("max-length=1000"),
        "{queues}"
    );
    let bindings = at_shop(&target, &["list", "bindings", "--json"]);
    assert!(bindings.contains("order.#"), "{bindings}");
    // The two brokers list the same (what describes, not what happened).
    let listed = |broker: &Broker, what: &str, fields: &[&str]| -> Vec<serde_json::Value> {
        let mut rows: Vec<serde_json::Value> = at_shop(broker, &["list", what, "--json"])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|row| {
                fields
                    .iter()
                    .map(|f| (f.to_string(), row[*f].clone()))
                    .collect()
            })
            .collect();
        rows.sort_by_key(|r| r.to_string());
        rows
    };
    for (what, fields) in [
        ("queues", &["name", "durable", "flush", "arguments"][..]),
        ("exchanges", &["name", "type", "durable", "plugin"][..]),
        ("bindings", &["exchange", "queue", "key", "arguments"][..]),
        ("users", &["name", "tags"][..]),
        ("vhosts", &["name"][..]),
        ("cells", &["local", "entry", "cell", "what"][..]),
    ] {
        assert_eq!(
            listed(&source, what, fields),
            listed(&target, what, fields),
            "list {what}"
        );
    }
    let carol = target.cli_as(
        &target.url("carol", "carol-secret", "shop"),
        &["list", "queues"],
    );
    assert!(carol.status.success(), "{}", stderr(&carol));
    // Again: nothing to do.
    let again = target.cli(&["definitions", "import", file.to_str().unwrap()]);
    assert!(
        stderr(&again).contains("definitions imported: 0 created"),
        "{}",
        stderr(&again)
    );
    // Over HTTP too, the same document.
    let (status, body) =
        support::http(&target, "GET", "/api/definitions", Some(("guest", "guest")));
    assert_eq!(status, 200);
    let over_http: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(over_http["queues"], definitions["queues"]);
}

#[test]
fn a_file_needing_a_missing_plugin_changes_nothing() {
    let broker = Broker::start();
    let mut definitions: serde_json::Value =
        serde_json::from_str(&broker.cli_ok(&["definitions", "export"])).unwrap();
    definitions["vhosts"]
        .as_array_mut()
        .unwrap()
        .push("fresh".into());
    definitions["exchanges"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "vhost": "/", "name": "geo", "kind": "geo-router", "auto_delete": false, "arguments": {}
        }));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defs.json");
    std::fs::write(&file, definitions.to_string()).unwrap();
    let out = broker.cli(&["definitions", "import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs plugin 'geo-router'")
            && stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    let vhosts = broker.cli_ok(&["list", "vhosts", "--json"]);
    assert!(
        !vhosts.contains("fresh"),
        "the vhost of the refused file was not created: {vhosts}"
    );
}
