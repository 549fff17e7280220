//! Half (transactional) messages in the storage engine: invisible until
//! committed, committed or discarded exactly once, and across a crash a
//! committed one never pending again, a pending one never delivered.

use std::path::Path;

use bytes::Bytes;
use switchyard::storage::{FlushMode, MessageStore, StoreConfig, StoredMessage};

fn message(n: u64) -> StoredMessage {
    StoredMessage {
        flags: 1,
        publish_ms: 1_000 + n,
        routing_key: Bytes::from(format!("key.{n}")),
        body: Bytes::from(format!("half-{n}")),
        ..StoredMessage::default()
    }
}

fn open(dir: &Path) -> MessageStore {
    let config = StoreConfig {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..StoreConfig::small(dir)
    };
    MessageStore::open(config).unwrap().0
}

#[test]
fn a_half_message_is_invisible_until_committed_and_ends_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.create_queue("a", FlushMode::Async).unwrap();
    let b = store.create_queue("b", FlushMode::Sync).unwrap();
    let half = store.append_half(&message(1), &[a, b]).unwrap();
    assert!(half.needs_sync, "durable as its sync destination wants");
    let id = half.offsets[0].1;
    assert!(store.half_pending(id).unwrap());
    assert_eq!(store.stats(a).unwrap().ready, 0);
    assert!(store.deliver(b).unwrap().is_none());
    assert_eq!(store.pending_halves().unwrap(), vec![id]);
    assert_eq!(store.count_half_check(id).unwrap(), 1);
    assert_eq!(store.half(id).unwrap().checks, 1);

    let commit = store.commit_half(id).unwrap().unwrap();
    assert_eq!(commit.queues, vec![a, b]);
    assert_eq!(store.deliver(a).unwrap().unwrap().message, message(1));
    assert_eq!(store.deliver(b).unwrap().unwrap().message, message(1));
    assert!(store.commit_half(id).unwrap().is_none());
    assert!(!store.discard_half(id).unwrap());
    assert!(store.pending_halves().unwrap().is_empty());

    let other = store.append_half(&message(2), &[a]).unwrap().offsets[0].1;
    assert!(store.discard_half(other).unwrap());
    assert!(store.commit_half(other).unwrap().is_none());
    assert_eq!(
        store.stats(a).unwrap().ready + store.stats(a).unwrap().unacked,
        1
    );
    // The hidden queue is not listed.
    assert_eq!(store.queues().len(), 2);
}

#[test]
fn after_a_crash_committed_halves_stay_committed_and_pending_ones_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, ids) = {
        let store = open(dir.path());
        let queue = store.create_queue("q", FlushMode::Async).unwrap();
        let ids: Vec<u64> = (0..100)
            .map(|n| store.append_half(&message(n), &[queue]).unwrap().offsets[0].1)
            .collect();
        store.checkpoint().unwrap();
        for &id in &ids[..40] {
            store.commit_half(id).unwrap().unwrap();
        }
        for &id in &ids[40..50] {
            store.count_half_check(id).unwrap();
        }
        // Flushed: the commits' copies and the check counts are in the log;
        // no checkpoint since.
        let end = store.append(&message(999), &[queue]).unwrap().end;
        store.wait_durable(end).unwrap();
        store.abandon();
        (queue, ids)
    };
    let store = open(dir.path());
    assert_eq!(store.pending_halves().unwrap(), ids[40..].to_vec());
    assert_eq!(store.half(ids[45]).unwrap().checks, 1);
    assert_eq!(store.half(ids[60]).unwrap().checks, 0);
    let delivered: Vec<Bytes> = std::iter::from_fn(|| store.deliver(queue).unwrap())
        .map(|d| d.message.body)
        .collect();
    let expected: Vec<Bytes> = (0..40)
        .map(|n| message(n).body)
        .chain([message(999).body])
        .collect();
    assert_eq!(delivered, expected);
    // Commits after the restart deliver each once.
    for &id in &ids[40..] {
        store.commit_half(id).unwrap().unwrap();
    }
    assert_eq!(
        std::iter::from_fn(|| store.deliver(queue).unwrap()).count(),
        60
    );
}
