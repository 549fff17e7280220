//! Isolation in the broker core, without sockets (issue 12): what a
//! tenant may publish, see and hold; how logins are throttled.

use crate::core;

use core::*;
use std::net::SocketAddr;

use switchyard::broker::{Broker, Limits, Outcome, Permission, Principal};
use switchyard_protocol::{Message, Query, Value, code};

/// Adds `name` with rights on `/` given by three patterns.
fn tenant(broker: &Broker, name: &str, configure: &str, write: &str, read: &str) -> Principal {
    broker.users().add(name, "pw", vec![]).unwrap();
    broker
        .users()
        .permit(
            name,
            "/",
            Permission {
                configure: configure.into(),
                write: write.into(),
                read: read.into(),
            },
        )
        .unwrap();
    let record = broker.users().get(name).unwrap().unwrap();
    broker.users().principal(&record, "/").unwrap()
}

fn message(queue: &str) -> Message {
    Message::new(queue, format!("for {queue}"))
}

#[test]
fn the_default_exchange_needs_write_permission_on_the_queue_it_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "alice.secret", &[]);
    declare_queue(&broker, "nina.inbox", &[]);
    let nina = tenant(&broker, "nina", "nina\\..*", "nina\\..*", "nina\\..*");

    let published = broker.publish(&nina, "", &[message("alice.secret")]);
    let refused = published.stopped.expect("refused");
    assert_eq!(refused.code, code::ACCESS_REFUSED);
    assert!(
        refused
            .message
            .contains("user 'nina' has no write permission on queue 'alice.secret' in vhost '/'"),
        "{refused}"
    );
    assert!(published.outcomes.is_empty());
    assert_eq!(stats(&broker, "alice.secret").ready, 0);

    // A batch stops at the first message nina may not publish.
    let batch = [
        message("nina.inbox"),
        message("alice.secret"),
        message("nina.inbox"),
    ];
    let published = broker.publish(&nina, "", &batch);
    assert!(matches!(published.outcomes[..], [Outcome::Stored { .. }]));
    assert!(published.stopped.is_some());
    assert_eq!(stats(&broker, "nina.inbox").ready, 1);
    assert_eq!(stats(&broker, "alice.secret").ready, 0);

    // Unroutable keys she may write to are confirmed as before.
    let published = broker.publish(&nina, "", &[message("nina.nowhere")]);
    assert_eq!(published.outcomes, [Outcome::Unroutable]);
    assert_eq!(published.stopped, None);
}

#[test]
fn a_named_exchange_needs_write_permission_on_the_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "alice.secret", &[]);
    declare_fanout(&broker, "alice.events", "alice.secret");
    let nina = tenant(&broker, "nina", "nina\\..*", "nina\\..*", "nina\\..*");
    let published = broker.publish(&nina, "alice.events", &[message("anything")]);
    let refused = published.stopped.expect("refused");
    assert!(
        refused
            .message
            .contains("no write permission on exchange 'alice.events'"),
        "{refused}"
    );
    let missing = broker.publish(&nina, "nina.none", &[message("x")]);
    assert_eq!(missing.stopped.map(|e| e.code), Some(code::NOT_FOUND));
}

fn with_limits(dir: &std::path::Path, change: impl FnOnce(&mut Limits)) -> Broker {
    let mut options = options(dir);
    change(&mut options.limits);
    Broker::open(options).unwrap()
}

fn from(address: &str) -> SocketAddr {
    format!("{address}:40000").parse().unwrap()
}

fn login(broker: &Broker, user: &str, password: &str, address: &str) -> Result<u64, String> {
    broker
        .connect(user, password, "/", from(address), "test")
        .map(|(_, info)| info.id)
        .map_err(|e| e.message)
}

#[test]
fn a_remote_loopback_only_user_is_refused_before_its_password_is_looked_at() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    for password in ["guest", "wrong"] {
        let refused = login(&broker, "guest", password, "10.1.2.3").unwrap_err();
        assert!(
            refused.contains("user 'guest' may only connect from a loopback address"),
            "{refused}"
        );
    }
    assert_eq!(broker.users().passwords_verified(), 0);
}

#[test]
fn unknown_users_cost_a_password_check_like_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let known = login(&broker, "guest", "wrong", "127.0.0.1").unwrap_err();
    let unknown = login(&broker, "mallory", "wrong", "127.0.0.1").unwrap_err();
    assert_eq!(
        broker.users().passwords_verified(),
        2,
        "argon2 ran for both"
    );
    assert_eq!(
        known.replace("guest", "X"),
        unknown.replace("mallory", "X"),
        "the same answer"
    );
}

#[test]
fn failed_logins_are_throttled_per_user_and_per_address_with_the_time_to_wait() {
    let dir = tempfile::tempdir().unwrap();
    let broker = with_limits(dir.path(), |limits| {
        limits.login_failures_per_user = 3;
        limits.login_failures_per_address = 5;
        limits.login_failure_refill_ms = 3_600_000;
    });
    for user in ["alice", "bob"] {
        broker.users().add(user, "right", vec![]).unwrap();
        broker.users().permit(user, "/", Permission::all()).unwrap();
    }
    for _ in 0..3 {
        login(&broker, "alice", "wrong", "10.0.0.1").unwrap_err();
    }
    let checks = broker.users().passwords_verified();
    // Now even the right password waits, from anywhere, without argon2.
    let refused = login(&broker, "alice", "right", "10.0.0.9").unwrap_err();
    assert!(
        refused.contains("too many failed logins for user 'alice'; retry in 3600 s"),
        "{refused}"
    );
    assert_eq!(broker.users().passwords_verified(), checks);
    // Unknown names are throttled alike: the throttle is no user oracle.
    for _ in 0..3 {
        login(&broker, "nobody", "x", "10.0.0.2").unwrap_err();
    }
    let refused = login(&broker, "nobody", "x", "10.0.0.3").unwrap_err();
    assert!(
        refused.contains("too many failed logins for user 'nobody'"),
        "{refused}"
    );

    // 10.0.0.1 failed 3 times for alice; 2 more for others use it up.
    login(&broker, "carol", "x", "10.0.0.1").unwrap_err();
    login(&broker, "dave", "x", "10.0.0.1").unwrap_err();
    let refused = login(&broker, "bob", "right", "10.0.0.1").unwrap_err();
    assert!(
        refused.contains("too many failed logins from 10.0.0.1"),
        "{refused}"
    );
    // Bob elsewhere, and anyone over loopback, are unaffected.
    login(&broker, "bob", "right", "10.0.0.7").unwrap();
    for _ in 0..8 {
        login(&broker, "eve", "x", "127.0.0.1").unwrap_err();
    }
    login(&broker, "bob", "right", "127.0.0.1").unwrap();
}

#[test]
fn a_successful_login_forgives_its_users_earlier_failures() {
    let dir = tempfile::tempdir().unwrap();
    let broker = with_limits(dir.path(), |limits| {
        limits.login_failures_per_user = 2;
        limits.login_failure_refill_ms = 3_600_000;
    });
    login(&broker, "guest", "typo", "127.0.0.1").unwrap_err();
    login(&broker, "guest", "guest", "127.0.0.1").unwrap();
    login(&broker, "guest", "typo", "127.0.0.1").unwrap_err();
    login(&broker, "guest", "guest", "127.0.0.1").unwrap();
}

#[test]
fn connection_channel_and_consumer_limits_refuse_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = with_limits(dir.path(), |limits| {
        limits.max_connections = 3;
        limits.max_connections_per_user = 2;
        limits.max_channels_per_connection = 2;
        limits.max_consumers_per_channel = 1;
    });
    broker.users().add("alice", "pw", vec![]).unwrap();
    broker
        .users()
        .permit("alice", "/", Permission::all())
        .unwrap();
    let first = login(&broker, "guest", "guest", "127.0.0.1").unwrap();
    login(&broker, "guest", "guest", "127.0.0.1").unwrap();
    let refused = login(&broker, "guest", "guest", "127.0.0.1").unwrap_err();
    assert!(
        refused.contains("user 'guest' has as many connections as one user may")
            && refused.contains("the limit is 2 (limits.max_connections_per_user"),
        "{refused}"
    );
    login(&broker, "alice", "pw", "127.0.0.1").unwrap();
    let refused = login(&broker, "alice", "pw", "127.0.0.1").unwrap_err();
    assert!(
        refused.contains("the limit is 3 (limits.max_connections in"),
        "{refused}"
    );
    broker.disconnect(first);
    let (_, info) = broker
        .connect("alice", "pw", "/", from("127.0.0.1"), "test")
        .unwrap();

    broker.open_channel(&info).unwrap();
    broker.open_channel(&info).unwrap();
    let refused = broker.open_channel(&info).unwrap_err();
    assert_eq!(refused.code, code::NOT_ALLOWED);
    assert!(
        refused
            .message
            .contains("limits.max_channels_per_connection"),
        "{refused}"
    );
    broker.close_channel(&info);
    broker.open_channel(&info).unwrap();

    broker.limits().check_consumers(0).unwrap();
    let refused = broker.limits().check_consumers(1).unwrap_err();
    assert!(
        refused
            .message
            .contains("too many consumers on this channel: the limit is 1"),
        "{refused}"
    );
}

#[test]
fn partial_plugin_uploads_share_one_broker_wide_budget() {
    let dir = tempfile::tempdir().unwrap();
    let broker = with_limits(dir.path(), |limits| limits.max_upload_bytes = 100);
    let mut first = broker.upload_reservation();
    let mut second = broker.upload_reservation();
    first.grow(60).unwrap();
    let refused = second.grow(60).unwrap_err();
    assert!(
        refused
            .message
            .contains("uploads in progress hold 60 bytes")
            && refused.message.contains("limits.max_upload_bytes"),
        "{refused}"
    );
    assert_eq!(broker.upload_bytes_in_progress(), 60);
    drop(first);
    assert_eq!(broker.upload_bytes_in_progress(), 0);
    second.grow(100).unwrap();
}

#[test]
fn tenants_see_which_plugins_exist_but_not_their_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let nina = tenant(&broker, "nina", ".*", ".*", ".*");
    let columns = |p: &Principal| -> Vec<String> {
        let rows = broker.list(p, Query::Plugins).unwrap();
        assert!(rows.iter().any(|row| {
            row.iter()
                .any(|f| f.name == "name" && f.value == Value::Text("topic".into()))
        }));
        rows[0].iter().map(|f| f.name.clone()).collect()
    };
    assert_eq!(columns(&nina), ["name", "kind", "active"]);
    let all = columns(&guest(&broker));
    assert!(all.iter().any(|c| c == "calls"), "{all:?}");
}
