//! Every operation's permission and exclusivity rules, in the broker core
//! without sockets: the rules live in the core, so every front door (QUIC
//! today, HTTP next) applies the same ones.

use crate::core;

use core::*;
use switchyard::broker::{
    AckMode, BindingSpec, Broker, BrokerError, ConsumerSpec, ExchangeSpec, Permission, Principal,
    QueueSpec,
};
use switchyard_protocol::{Message, code};

/// A user with rights on `/` given by three patterns.
fn tenant(broker: &Broker, name: &str, configure: &str, write: &str, read: &str) -> Principal {
    let admin = guest(broker);
    broker.add_user(&admin, name, "pw", vec![]).unwrap();
    let permission = Permission {
        configure: configure.into(),
        write: write.into(),
        read: read.into(),
    };
    broker.permit(&admin, name, "/", permission).unwrap();
    let record = broker.users().get(name).unwrap().unwrap();
    broker.users().principal(&record, "/").unwrap()
}

fn queue_spec(name: &str, exclusive: bool) -> QueueSpec<'_> {
    QueueSpec {
        name,
        durable: false,
        exclusive,
        auto_delete: false,
        passive: false,
        arguments: vec![],
    }
}

fn exchange_spec(name: &str) -> ExchangeSpec<'_> {
    ExchangeSpec {
        name,
        kind: "fanout",
        durable: false,
        auto_delete: false,
        passive: false,
        arguments: vec![],
    }
}

fn binding<'a>(queue: &'a str, exchange: &'a str) -> BindingSpec<'a> {
    BindingSpec {
        queue,
        exchange,
        key: "",
        arguments: &[],
    }
}

#[track_caller]
fn refused<T>(result: Result<T, BrokerError>, code: u16, naming: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            assert!(
                e.message.contains(naming),
                "{e} (expected to name {naming})"
            );
        }
        Ok(_) => panic!("allowed, expected a {code} naming {naming}"),
    }
}

#[test]
fn each_operation_needs_its_permission() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    broker
        .declare_queue(&admin, 0, queue_spec("theirs", false))
        .unwrap();
    broker
        .declare_exchange(&admin, exchange_spec("their-x"))
        .unwrap();
    broker
        .declare_exchange(&admin, exchange_spec("nina.x"))
        .unwrap();
    // Nina configures and reads `nina.*`, writes `nina.*` only.
    let nina = tenant(&broker, "nina", "^nina\\..*", "^nina\\..*", "^nina\\..*");

    // configure: declare and delete queues and exchanges.
    broker
        .declare_queue(&nina, 1, queue_spec("nina.q", false))
        .unwrap();
    refused(
        broker.declare_queue(&nina, 1, queue_spec("theirs", false)),
        code::ACCESS_REFUSED,
        "theirs",
    );
    refused(
        broker.delete_queue(&nina, 1, "theirs", false, false),
        code::ACCESS_REFUSED,
        "theirs",
    );
    refused(
        broker.declare_exchange(&nina, exchange_spec("x2")),
        code::ACCESS_REFUSED,
        "x2",
    );
    refused(
        broker.delete_exchange(&nina, "their-x", false),
        code::ACCESS_REFUSED,
        "their-x",
    );

    // write on the queue and read on the exchange: bind.
    broker.bind(&nina, 1, &binding("nina.q", "nina.x")).unwrap();
    refused(
        broker.bind(&nina, 1, &binding("theirs", "nina.x")),
        code::ACCESS_REFUSED,
        "theirs",
    );
    refused(
        broker.bind(&nina, 1, &binding("nina.q", "their-x")),
        code::ACCESS_REFUSED,
        "their-x",
    );
    refused(
        broker.unbind(&nina, 1, &binding("theirs", "nina.x")),
        code::ACCESS_REFUSED,
        "theirs",
    );

    // write: publish (the default exchange checks the queue it reaches).
    let published = broker.publish(&nina, "", &[Message::new("theirs", "x")]);
    assert!(
        published
            .stopped
            .is_some_and(|e| e.code == code::ACCESS_REFUSED)
    );
    let published = broker.publish(&nina, "", &[Message::new("nina.q", "x")]);
    assert!(published.stopped.is_none());

    // read: get, consume, purge.
    refused(
        broker.get(&nina, 1, "theirs", AckMode::Manual),
        code::ACCESS_REFUSED,
        "theirs",
    );
    refused(
        broker.start_consumer(&nina, 1, ConsumerSpec::new("theirs", "c"), 0),
        code::ACCESS_REFUSED,
        "theirs",
    );
    refused(
        broker.purge_queue(&nina, 1, "theirs"),
        code::ACCESS_REFUSED,
        "theirs",
    );
    let got = broker.get(&nina, 1, "nina.q", AckMode::Auto).unwrap();
    assert_eq!(
        got.map(|g| g.delivery.message.body.to_vec()),
        Some(b"x".to_vec())
    );
    broker
        .start_consumer(&nina, 1, ConsumerSpec::new("nina.q", "c"), 0)
        .unwrap();

    // administration: users, permissions, vhosts, plugins.
    refused(
        broker.add_user(&nina, "eve", "pw", vec![]),
        code::ACCESS_REFUSED,
        "adding a user",
    );
    refused(
        broker.delete_user(&nina, "guest"),
        code::ACCESS_REFUSED,
        "deleting a user",
    );
    refused(
        broker.set_password(&nina, "guest", "mine"),
        code::ACCESS_REFUSED,
        "another user's password",
    );
    broker.set_password(&nina, "nina", "new").unwrap();
    let everything = Permission {
        configure: ".*".into(),
        write: ".*".into(),
        read: ".*".into(),
    };
    refused(
        broker.permit(&nina, "nina", "/", everything),
        code::ACCESS_REFUSED,
        "setting permissions",
    );
    refused(broker.add_vhost(&nina, "mine"), code::ACCESS_REFUSED, "");
    refused(
        broker.unload_plugin(&nina, "topic"),
        code::ACCESS_REFUSED,
        "",
    );
}

#[test]
fn another_connections_exclusive_queue_is_locked_for_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    let (owner, other) = (1, 2);
    broker
        .declare_queue(&admin, owner, queue_spec("mine", true))
        .unwrap();
    broker.declare_exchange(&admin, exchange_spec("x")).unwrap();
    publish(&broker, "mine", "secret");

    let locked = code::RESOURCE_LOCKED;
    refused(
        broker.get(&admin, other, "mine", AckMode::Auto),
        locked,
        "exclusive",
    );
    refused(
        broker.start_consumer(&admin, other, ConsumerSpec::new("mine", "c"), 0),
        locked,
        "exclusive",
    );
    refused(
        broker.purge_queue(&admin, other, "mine"),
        locked,
        "exclusive",
    );
    refused(
        broker.bind(&admin, other, &binding("mine", "x")),
        locked,
        "exclusive",
    );
    refused(
        broker.declare_queue(&admin, other, queue_spec("mine", true)),
        locked,
        "exclusive",
    );
    refused(
        broker.delete_queue(&admin, other, "mine", false, false),
        locked,
        "exclusive",
    );

    // Its owner may do all of it.
    broker.bind(&admin, owner, &binding("mine", "x")).unwrap();
    let got = broker.get(&admin, owner, "mine", AckMode::Auto).unwrap();
    assert_eq!(
        got.map(|g| g.delivery.message.body.to_vec()),
        Some(b"secret".to_vec())
    );
    broker
        .start_consumer(&admin, owner, ConsumerSpec::new("mine", "c"), 0)
        .unwrap();
    broker.purge_queue(&admin, owner, "mine").unwrap();
    broker
        .delete_queue(&admin, owner, "mine", false, false)
        .unwrap();
}

#[test]
fn consumer_limits_and_exclusive_consumers_are_enforced_by_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    broker
        .declare_queue(&admin, 1, queue_spec("work", false))
        .unwrap();
    let limit = broker.limits().max_consumers_per_channel as usize;
    refused(
        broker.start_consumer(&admin, 1, ConsumerSpec::new("work", "c"), limit),
        code::NOT_ALLOWED,
        "limits.max_consumers_per_channel",
    );
    broker
        .start_consumer(
            &admin,
            1,
            ConsumerSpec {
                exclusive: true,
                ..ConsumerSpec::new("work", "solo")
            },
            0,
        )
        .unwrap();
    refused(
        broker.start_consumer(&admin, 2, ConsumerSpec::new("work", "second"), 0),
        code::ACCESS_REFUSED,
        "exclusive consumer",
    );
}

#[test]
fn a_dead_letter_fallback_needs_the_declarers_rights_on_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    broker
        .declare_queue(&admin, 0, queue_spec("alice.inbox", false))
        .unwrap();
    let mallory = tenant(&broker, "mallory", "mallory\\..*", "mallory\\..*", ".*");
    let with_fallback = |fallback: &'static str| QueueSpec {
        arguments: vec![switchyard_protocol::Field::new(
            "dead-letter-fallback",
            switchyard_protocol::Value::Text(fallback.into()),
        )],
        ..queue_spec("mallory.work", false)
    };
    // Another tenant's queue: no write permission on it.
    refused(
        broker.declare_queue(&mallory, 0, with_fallback("alice.inbox")),
        code::ACCESS_REFUSED,
        "'dead-letter-fallback': user 'mallory' has no write permission on queue 'alice.inbox'",
    );
    // A missing one it could not create either.
    refused(
        broker.declare_queue(&mallory, 0, with_fallback("alice.later")),
        code::ACCESS_REFUSED,
        "queue 'alice.later'",
    );
    // Its own, even before it exists.
    broker
        .declare_queue(&mallory, 0, with_fallback("mallory.parked"))
        .unwrap();
}

#[test]
fn deleting_a_vhost_forgets_who_had_access_and_the_last_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    broker.add_vhost(&admin, "shop").unwrap();
    broker.add_user(&admin, "nina", "pw", vec![]).unwrap();
    broker
        .permit(&admin, "nina", "shop", Permission::all())
        .unwrap();
    broker.delete_vhost(&admin, "shop").unwrap();
    // Made again, it grants nobody access that was given before.
    broker.add_vhost(&admin, "shop").unwrap();
    let nina = broker.users().get("nina").unwrap().unwrap();
    refused(
        broker.users().principal(&nina, "shop"),
        code::ACCESS_REFUSED,
        "no access to vhost 'shop'",
    );

    broker.delete_vhost(&admin, "shop").unwrap();
    refused(
        broker.delete_vhost(&admin, "/"),
        code::PRECONDITION_FAILED,
        "last vhost",
    );
    // Deleted while another remained, `/` stays deleted after a restart.
    broker.add_vhost(&admin, "shop").unwrap();
    broker.delete_vhost(&admin, "/").unwrap();
    drop(broker);
    let broker = open(dir.path());
    assert!(broker.vhost("/").is_err());
    assert!(broker.vhost("shop").is_ok());
}

#[test]
fn names_that_would_mislead_a_listing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    for name in [
        "invoice\u{202e}fdp.exe",
        "<img src=x onerror=alert(1)>",
        "a\u{2066}b",
    ] {
        refused(
            broker.declare_queue(&admin, 0, queue_spec(name, false)),
            code::SYNTAX_ERROR,
            "bidirectional",
        );
    }
    broker
        .declare_queue(&admin, 0, queue_spec("orders.eu-1 (ünïcode)", false))
        .unwrap();
}

#[test]
fn a_tenant_lists_its_own_resources_and_vhosts_only() {
    use switchyard_protocol::{Query, Value, find};
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let admin = guest(&broker);
    broker.add_vhost(&admin, "secret-shop").unwrap();
    for queue in ["alice.inbox", "bob.inbox"] {
        broker
            .declare_queue(&admin, 0, queue_spec(queue, false))
            .unwrap();
    }
    broker
        .declare_exchange(&admin, exchange_spec("bob.events"))
        .unwrap();
    broker
        .bind(&admin, 0, &binding("bob.inbox", "bob.events"))
        .unwrap();
    let alice = tenant(&broker, "alice", "alice\\..*", "alice\\..*", "alice\\..*");
    let names = |what: Query, column: &str| -> Vec<String> {
        broker
            .list(&alice, what)
            .unwrap()
            .iter()
            .filter_map(|row| match find(row, column) {
                Some(Value::Text(name)) => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(names(Query::Queues, "name"), ["alice.inbox"]);
    assert!(names(Query::Bindings, "queue").is_empty());
    assert!(!names(Query::Exchanges, "name").contains(&"bob.events".to_string()));
    assert_eq!(names(Query::Vhosts, "name"), ["/"]);
    // Administrators see everything.
    assert_eq!(broker.list(&admin, Query::Queues).unwrap().len(), 2);
}
