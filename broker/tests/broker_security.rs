//! Isolation in the broker core, without sockets (issue 12): what a
//! tenant may publish, see and hold; how logins are throttled.

mod core;

use core::*;
use switchyard::broker::{Broker, Outcome, Permission, Principal};
use switchyard_protocol::{Message, code};

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
