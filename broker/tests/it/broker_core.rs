//! The broker core without sockets: queue counters, max-length, TTL and
//! purge, each as a user of a RabbitMQ-like broker relies on them.

use crate::core;

use core::*;
use switchyard::broker::{Outcome, Settle};

#[test]
fn a_requeued_message_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "one", &[]);
    publish(&broker, "one", "m1");
    let d = deliver(&broker, "one").unwrap();
    assert_eq!(
        (stats(&broker, "one").ready, stats(&broker, "one").unacked),
        (0, 1)
    );
    settle(&broker, "one", d.offset, Settle::Requeue);
    let s = stats(&broker, "one");
    assert_eq!((s.ready, s.unacked), (1, 0), "one message, requeued");

    // A consumer that goes away holding prefetched messages.
    for i in 0..10 {
        publish(&broker, "one", &format!("p{i}"));
    }
    let held: Vec<u64> = (0..4)
        .map(|_| deliver(&broker, "one").unwrap().offset)
        .collect();
    settle(&broker, "one", held[0], Settle::Ack);
    release(&broker, "one", &held[1..]);
    let s = stats(&broker, "one");
    assert_eq!((s.ready, s.unacked), (10, 0), "11 published, 1 acked");
    assert_eq!(drain(&broker, "one").len(), 10);
    assert_eq!(stats(&broker, "one").ready, 0);
}

#[test]
fn drop_head_drops_only_beyond_max_length_after_a_consumer_released_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "ml", &[("max-length", "5")]);
    for i in 1..=5 {
        publish(&broker, "ml", &format!("m{i}"));
    }
    // A consumer with prefetch receives all five, acks m1 and goes away.
    let held: Vec<u64> = (0..5)
        .map(|_| deliver(&broker, "ml").unwrap().offset)
        .collect();
    settle(&broker, "ml", held[0], Settle::Ack);
    release(&broker, "ml", &held[1..]);
    publish(&broker, "ml", "m6");
    assert_eq!(drain(&broker, "ml"), ["m2", "m3", "m4", "m5", "m6"]);

    // Beyond the limit, the oldest goes.
    for i in 7..=12 {
        publish(&broker, "ml", &format!("m{i}"));
    }
    assert_eq!(drain(&broker, "ml"), ["m8", "m9", "m10", "m11", "m12"]);
}

#[test]
fn reject_publish_refuses_only_when_the_queue_is_really_full() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(
        &broker,
        "ml",
        &[("max-length", "10"), ("overflow", "reject-publish")],
    );
    for i in 0..10 {
        assert!(matches!(
            publish(&broker, "ml", &format!("m{i}")),
            Outcome::Stored { .. }
        ));
    }
    let held: Vec<u64> = (0..10)
        .map(|_| deliver(&broker, "ml").unwrap().offset)
        .collect();
    settle(&broker, "ml", held[0], Settle::Ack);
    release(&broker, "ml", &held[1..]);
    assert!(
        matches!(publish(&broker, "ml", "m10"), Outcome::Stored { .. }),
        "9 held, room for one"
    );
    match publish(&broker, "ml", "m11") {
        Outcome::Refused(e) => assert!(e.message.contains("queue 'ml' is full"), "{e}"),
        other => panic!("an 11th message was not refused: {other:?}"),
    }
}

#[test]
fn reject_publish_dlx_refuses_and_dead_letters_the_refused_message() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "dead", &[]);
    declare_fanout(&broker, "dlx", "dead");
    declare_queue(
        &broker,
        "ml",
        &[
            ("max-length", "2"),
            ("overflow", "reject-publish-dlx"),
            ("dead-letter-exchange", "dlx"),
        ],
    );
    for body in ["m1", "m2"] {
        assert!(matches!(
            publish(&broker, "ml", body),
            Outcome::Stored { .. }
        ));
    }
    match publish(&broker, "ml", "m3") {
        Outcome::Refused(e) => assert!(e.message.contains("queue 'ml' is full"), "{e}"),
        other => panic!("a third message was not refused: {other:?}"),
    }
    assert_eq!(drain(&broker, "ml"), ["m1", "m2"], "the queue kept its own");
    let dead = deliver(&broker, "dead").expect("the refused message, dead-lettered");
    assert_eq!(body(&dead), "m3");
    let header = |name: &str| switchyard_protocol::find(&dead.message.headers, name).cloned();
    assert_eq!(header("x-death-reason"), Some(text("maxlen")));
    assert_eq!(header("x-death-queue"), Some(text("ml")));
}

#[test]
fn expired_heads_leave_the_queue_without_a_consumer_and_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "dead", &[]);
    declare_fanout(&broker, "dlx", "dead");
    declare_queue(&broker, "ttl", &[("dead-letter-exchange", "dlx")]);
    for i in 0..3 {
        publish_expired(&broker, "ttl", &format!("e{i}"));
    }
    publish(&broker, "ttl", "live");
    publish_expired(&broker, "ttl", "behind-a-live-head");
    assert_eq!(stats(&broker, "ttl").ready, 5);

    assert_eq!(broker.expire_due(), 3, "the three expired heads");
    assert_eq!(stats(&broker, "ttl").ready, 2);
    assert_eq!(stats(&broker, "dead").ready, 3, "dead-lettered on expiry");
    // The expired message behind the live head is skipped when reached.
    assert_eq!(drain(&broker, "ttl"), ["live"]);
    let dead = drain(&broker, "dead");
    assert_eq!(dead, ["e0", "e1", "e2", "behind-a-live-head"]);
}

#[test]
fn queue_ttl_expires_heads_proactively() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "short", &[("message-ttl", "1000")]);
    publish(&broker, "short", "a");
    clock(&broker).advance(500);
    publish(&broker, "short", "b");
    clock(&broker).advance(499);
    assert_eq!(broker.expire_due(), 0, "neither has lived 1000 ms");
    clock(&broker).advance(1);
    assert_eq!(broker.expire_due(), 1, "a is due, b is not");
    clock(&broker).advance(500);
    assert_eq!(broker.expire_due(), 1, "b is due");
    assert_eq!(stats(&broker, "short").ready, 0);
}

#[test]
fn purge_drops_ready_messages_and_leaves_deliveries_to_their_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "p", &[]);
    for i in 0..5 {
        publish(&broker, "p", &format!("m{i}"));
    }
    let a = deliver(&broker, "p").unwrap();
    let b = deliver(&broker, "p").unwrap();
    let principal = guest(&broker);
    assert_eq!(broker.purge_queue(&principal, 0, "p").unwrap(), 3);
    let s = stats(&broker, "p");
    assert_eq!((s.ready, s.unacked), (0, 2));
    settle(&broker, "p", a.offset, Settle::Ack);
    // The consumer holding m1 goes away: m1 comes back, flagged.
    release(&broker, "p", &[b.offset]);
    assert_eq!(
        (stats(&broker, "p").ready, stats(&broker, "p").unacked),
        (1, 0)
    );
    let again = deliver(&broker, "p").unwrap();
    assert_eq!(body(&again), "m1");
    assert!(again.redelivered);
    settle(&broker, "p", again.offset, Settle::Ack);
    assert!(deliver(&broker, "p").is_none());
}

#[test]
fn max_length_bytes_limits_the_ready_bytes_with_drop_head_and_reject_publish() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    // Learn what one message of these takes in the log (queue names, the
    // routing keys, all of one length).
    declare_queue(&broker, "probe", &[]);
    publish(&broker, "probe", "m0");
    let one = stats(&broker, "probe").ready_bytes;
    assert!(one > 2, "a message's bytes include its header");

    declare_queue(
        &broker,
        "bytes",
        &[("max-length-bytes", &(3 * one).to_string())],
    );
    for i in 0..5 {
        publish(&broker, "bytes", &format!("m{i}"));
    }
    let s = stats(&broker, "bytes");
    assert_eq!(
        (s.ready, s.ready_bytes),
        (3, 3 * one),
        "drop-head kept the newest that fit"
    );
    // Messages in flight do not count against the limit.
    let held = deliver(&broker, "bytes").unwrap();
    publish(&broker, "bytes", "m5");
    assert_eq!(stats(&broker, "bytes").ready, 3);
    settle(&broker, "bytes", held.offset, Settle::Ack);
    assert_eq!(drain(&broker, "bytes"), ["m3", "m4", "m5"]);

    declare_queue(
        &broker,
        "fully",
        &[
            ("max-length-bytes", &(2 * one).to_string()),
            ("overflow", "reject-publish"),
        ],
    );
    for i in 0..2 {
        assert!(matches!(
            publish(&broker, "fully", &format!("m{i}")),
            Outcome::Stored { .. }
        ));
    }
    match publish(&broker, "fully", "m2") {
        Outcome::Refused(e) => assert!(e.message.contains("max-length-bytes"), "{e}"),
        other => panic!("a publish past max-length-bytes was not refused: {other:?}"),
    }
    // The count survives a restart (recounted from the index).
    drop(broker);
    let broker = open(dir.path());
    assert_eq!(stats(&broker, "fully").ready_bytes, 2 * one);
}
