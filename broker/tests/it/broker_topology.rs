//! The broker core without sockets: what declaring exchanges and vhosts
//! accepts, refuses and says.

use crate::core;

use core::*;
use switchyard::broker::{Outcome, QueueSpec};
use switchyard_protocol::Message;

#[test]
fn unknown_exchange_arguments_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let refused = declare_exchange(&broker, "orders", "topic", &[("filtre", "idempotency")])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("'filtre'"),
        "names the argument: {refused}"
    );
    assert!(
        refused.contains("filter"),
        "lists the known ones: {refused}"
    );
    assert!(
        vhost(&broker).exchange("orders").is_err(),
        "nothing declared"
    );

    // The broker's own and a built-in kind's own arguments are accepted,
    // with or without the AMQP `x-` prefix.
    declare_exchange(&broker, "deduped", "topic", &[("x-filter", "idempotency")]).unwrap();
    declare_exchange(
        &broker,
        "spread",
        "consistent-hash",
        &[("hash-header", "customer")],
    )
    .unwrap();
}

#[test]
fn redeclaring_with_other_settings_says_what_exists_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "capped", &[("max-length", "5")]);
    let refused = broker
        .declare_queue(
            &guest(&broker),
            0,
            QueueSpec {
                name: "capped",
                durable: true,
                exclusive: false,
                auto_delete: false,
                passive: false,
                arguments: vec![],
            },
        )
        .unwrap_err()
        .to_string();
    assert!(refused.contains("max-length=5"), "{refused}");
    assert!(
        !refused.contains("QueueSettings"),
        "no debug output: {refused}"
    );

    declare_exchange(&broker, "events", "topic", &[]).unwrap();
    let refused = declare_exchange(&broker, "events", "topic", &[("filter", "idempotency")])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("already exists"), "{refused}");
}

#[test]
fn unroutable_reasons_speak_of_each_exchange_kind() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    for (name, kind) in [("d", "direct"), ("f", "fanout"), ("h", "headers")] {
        declare_exchange(&broker, name, kind, &[]).unwrap();
    }
    let v = vhost(&broker);
    let reason = |exchange: &str| v.exchange(exchange).unwrap().unroutable_reason("k");
    assert!(reason("").contains("no queue 'k'"), "{}", reason(""));
    assert!(reason("d").contains("routing key 'k'"), "{}", reason("d"));
    assert!(!reason("f").contains("routing key"), "{}", reason("f"));
    assert!(reason("h").contains("headers"), "{}", reason("h"));
    assert!(
        matches!(
            publish_message(&broker, Message::new("nowhere", "x")),
            Outcome::Unroutable
        ),
        "the default exchange has no queue 'nowhere'"
    );
}

#[test]
fn an_administrator_can_use_a_vhost_it_created() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker.add_vhost(&guest(&broker), "shop").unwrap();
    let record = broker.users().get("guest").unwrap().unwrap();
    let principal = broker.users().principal(&record, "shop").unwrap();
    principal
        .check(switchyard::broker::Access::Configure, "queue", "orders")
        .unwrap();
}

#[test]
fn an_exchange_of_a_plugin_of_another_kind_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let refused = declare_exchange(&broker, "odd", "idempotency", &[])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("is a filter plugin, not an exchange plugin"),
        "{refused}"
    );
}
