//! Delayed messages in the storage engine: invisible until due, promoted
//! in due-time order, counted per queue, and exactly once across a
//! crash-like stop (a promotion and the end of its delay are one record).

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use switchyard::storage::{FlushMode, MessageStore, StoreConfig, StoredMessage};

const T0: u64 = 1_700_000_000_000;

fn delayed(n: u64, due: u64) -> StoredMessage {
    StoredMessage {
        flags: 1,
        publish_ms: T0,
        deliver_after_ms: due,
        routing_key: Bytes::from_static(b"k"),
        body: Bytes::from(n.to_le_bytes().to_vec()),
        ..StoredMessage::default()
    }
}

fn id_of(message: &StoredMessage) -> u64 {
    u64::from_le_bytes(message.body[..8].try_into().unwrap())
}

/// A store that checkpoints only when told (or closed).
fn open(dir: &Path) -> MessageStore {
    let config = StoreConfig {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..StoreConfig::small(dir)
    };
    MessageStore::open(config).unwrap().0
}

/// Delivers and acks everything ready in `queue`: (id, redelivered).
fn drain(store: &MessageStore, queue: u32) -> Vec<(u64, bool)> {
    let mut got = Vec::new();
    while let Some(d) = store.deliver(queue).unwrap() {
        got.push((id_of(&d.message), d.redelivered));
        store.ack(queue, d.offset).unwrap();
    }
    got
}

#[test]
fn delayed_messages_appear_when_due_in_due_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.create_queue("a", FlushMode::Async).unwrap();
    let b = store.create_queue("b", FlushMode::Sync).unwrap();
    // Published in one order, due in another.
    let dues = [T0 + 300, T0 + 100, T0 + 200, T0 + 100];
    for (n, due) in dues.iter().enumerate() {
        let appended = store
            .append_delayed(&delayed(n as u64, *due), &[a, b])
            .unwrap();
        assert!(appended.needs_sync, "b is a sync queue");
    }
    store.append(&delayed(9, 0), &[a]).unwrap();
    assert_eq!(store.delayed(a), 4);
    assert_eq!(store.delayed(b), 4);
    assert_eq!(store.next_due(), Some(T0 + 100));
    assert_eq!(drain(&store, a), vec![(9, false)], "only the undelayed one");
    assert_eq!(store.promote_due(T0 + 99, 100).unwrap().promoted, 0);

    let promotion = store.promote_due(T0 + 200, 100).unwrap();
    assert_eq!(promotion.promoted, 3);
    assert_eq!(promotion.queues.len(), 2);
    assert_eq!(store.delayed(a), 1);
    let ids: Vec<u64> = drain(&store, a).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![1, 3, 2], "due-time order, ties in publish order");
    assert_eq!(drain(&store, b).len(), 3);
    assert_eq!(store.next_due(), Some(T0 + 300));

    // A queue deleted meanwhile is skipped; the others still get it.
    store.delete_queue(b).unwrap();
    assert_eq!(store.promote_due(T0 + 1_000, 100).unwrap().promoted, 1);
    assert_eq!(drain(&store, a), vec![(0, false)]);
    assert_eq!(store.next_due(), None);
    assert_eq!(store.delayed(a), 0);
}

#[test]
fn delays_survive_a_crash_and_promotions_happen_once() {
    let dir = tempfile::tempdir().unwrap();
    let count = 3_000u64;
    let due_of = |n: u64| T0 + (n * 7919) % 1_000;
    let mut first_run = HashMap::new();
    {
        let store = open(dir.path());
        let q = store.create_queue("q", FlushMode::Async).unwrap();
        for n in 0..count / 2 {
            store.append_delayed(&delayed(n, due_of(n)), &[q]).unwrap();
        }
        store.checkpoint().unwrap();
        for n in count / 2..count {
            store.append_delayed(&delayed(n, due_of(n)), &[q]).unwrap();
        }
        // Half of them come due and are promoted; a third of the
        // promoted ones are consumed; then the process "dies" with the
        // promotions' settle events still in memory.
        store.promote_due(T0 + 499, usize::MAX).unwrap();
        for _ in 0..500 {
            let d = store.deliver(q).unwrap().unwrap();
            assert!(due_of(id_of(&d.message)) <= T0 + 499, "never early");
            first_run.insert(id_of(&d.message), d.offset);
        }
        store.abandon();
    }
    let store = open(dir.path());
    let q = store.queue_id("q").unwrap();
    assert!(store.delayed(q) > 0);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for (id, redelivered) in drain(&store, q) {
        assert!(due_of(id) <= T0 + 499, "message {id} promoted early");
        assert!(
            redelivered || !first_run.contains_key(&id),
            "a message delivered before the crash comes back flagged"
        );
        *seen.entry(id).or_default() += 1;
    }
    for id in first_run.keys() {
        assert!(
            seen.contains_key(id),
            "message {id} delivered before the crash and unacked is lost"
        );
    }
    store.promote_due(T0 + 10_000, usize::MAX).unwrap();
    for (id, _) in drain(&store, q) {
        assert!(due_of(id) > T0 + 499, "message {id} promoted twice");
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(seen.len() as u64, count, "every delayed message arrives");
    assert!(seen.values().all(|&n| n == 1), "none twice");
    assert_eq!(store.delayed(q), 0);
}
