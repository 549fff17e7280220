//! Streams in the storage engine: views (each consumer group's own position
//! over a stream's index), their durability across crashes, resets,
//! positions by time, and retention in whole segments.

use std::path::Path;

use bytes::Bytes;
use switchyard::storage::{FlushMode, MessageStore, StorageError, StoreConfig, StoredMessage};

fn message(n: u64) -> StoredMessage {
    StoredMessage {
        flags: 1,
        publish_ms: 1_000_000 + n * 10,
        routing_key: Bytes::from(format!("key.{n}")),
        body: Bytes::from(vec![b'x'; 1000]),
        ..StoredMessage::default()
    }
}

/// Small segments (1 MiB) and no automatic checkpoints: a crash-like stop
/// leaves everything after the last explicit checkpoint to recovery.
fn open(dir: &Path) -> MessageStore {
    let config = StoreConfig {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..StoreConfig::small(dir)
    };
    MessageStore::open(config).unwrap().0
}

fn take_all(store: &MessageStore, view: u32) -> Vec<u64> {
    std::iter::from_fn(|| store.deliver(view).unwrap().map(|d| d.offset)).collect()
}

#[test]
fn each_view_reads_the_whole_stream_and_keeps_its_own_acks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stream = store.create_queue("s", FlushMode::Async).unwrap();
    for n in 0..100 {
        store.append(&message(n), &[stream]).unwrap();
    }
    let (a, created) = store.create_view(stream, "s/a", 0).unwrap();
    assert!(created);
    let (b, _) = store.create_view(stream, "s/b", 40).unwrap();
    assert_eq!(store.create_view(stream, "s/a", 7).unwrap(), (a, false));
    assert_eq!(take_all(&store, a), (0..100).collect::<Vec<_>>());
    assert_eq!(take_all(&store, b), (40..100).collect::<Vec<_>>());
    for offset in 0..50 {
        assert!(store.ack(a, offset).unwrap());
    }
    assert_eq!(store.committed(a).unwrap(), 50);
    assert_eq!(store.committed(b).unwrap(), 40);
    assert_eq!(store.stats(a).unwrap().unacked, 50);
    assert_eq!(store.read(a, 3).unwrap(), message(3));
    // Nobody consumes the stream itself: it still holds everything.
    assert_eq!(store.stats(stream).unwrap().ready, 100);
    // A view is never a destination.
    assert!(matches!(
        store.append(&message(0), &[a]),
        Err(StorageError::NoSuchQueue(_))
    ));
    assert!(store.queues().iter().all(|(id, _)| *id == stream));
    assert_eq!(store.views(stream).len(), 2);
}

#[test]
fn view_positions_survive_a_crash_and_only_unacked_messages_come_again() {
    let dir = tempfile::tempdir().unwrap();
    let (stream, view) = {
        let store = open(dir.path());
        let stream = store.create_queue("s", FlushMode::Async).unwrap();
        for n in 0..1000 {
            store.append(&message(n), &[stream]).unwrap();
        }
        let (view, _) = store.create_view(stream, "s/g", 0).unwrap();
        store.checkpoint().unwrap();
        assert_eq!(take_all(&store, view).len(), 1000);
        for offset in 0..600 {
            store.ack(view, offset).unwrap();
        }
        // The acks reach the log with the next flush (no checkpoint since).
        store.append(&message(1000), &[stream]).unwrap();
        let end = store.append(&message(1001), &[stream]).unwrap().end;
        store.wait_durable(end).unwrap();
        store.abandon();
        (stream, view)
    };
    let store = open(dir.path());
    assert_eq!(store.committed(view).unwrap(), 600);
    let again: Vec<_> = std::iter::from_fn(|| store.deliver(view).unwrap()).collect();
    assert_eq!(
        again.iter().map(|d| d.offset).collect::<Vec<_>>(),
        (600..1002).collect::<Vec<_>>()
    );
    assert!(again[..400].iter().all(|d| d.redelivered));
    assert_eq!(store.stats(stream).unwrap().ready, 1002);
}

#[test]
fn a_reset_moves_a_view_once_nothing_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stream = store.create_queue("s", FlushMode::Async).unwrap();
    for n in 0..10 {
        store.append(&message(n), &[stream]).unwrap();
    }
    let (view, _) = store.create_view(stream, "s/g", 10).unwrap();
    assert!(take_all(&store, view).is_empty());
    assert_eq!(store.reset_view(view, 4).unwrap(), 4);
    let first = store.deliver(view).unwrap().unwrap();
    assert_eq!(first.offset, 4);
    assert!(matches!(
        store.reset_view(view, 0),
        Err(StorageError::Busy(_))
    ));
    store.nack(view, 4, true).unwrap();
    store.release(view, &[]).unwrap();
    // Past the end clamps to the end.
    assert_eq!(store.reset_view(view, 99).unwrap(), 10);
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.committed(view).unwrap(), 10);
    assert_eq!(store.reset_view(view, 0).unwrap(), 0);
    assert_eq!(take_all(&store, view), (0..10).collect::<Vec<_>>());
}

#[test]
fn offsets_are_found_by_publish_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stream = store.create_queue("s", FlushMode::Async).unwrap();
    for n in 0..500 {
        store.append(&message(n), &[stream]).unwrap();
    }
    assert_eq!(store.offset_at_time(stream, 0).unwrap(), 0);
    assert_eq!(store.offset_at_time(stream, 1_000_000 + 1234).unwrap(), 124);
    assert_eq!(store.offset_at_time(stream, 1_000_000 + 1230).unwrap(), 123);
    assert_eq!(store.offset_at_time(stream, u64::MAX).unwrap(), 500);
}

#[test]
fn retention_cuts_whole_segments_moves_views_and_frees_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stream = store.create_queue("s", FlushMode::Async).unwrap();
    let (view, _) = store.create_view(stream, "s/g", 0).unwrap();
    // ~5 MiB of 1 KiB messages in 1 MiB segments.
    let mut positions = Vec::new();
    for n in 0..5000 {
        positions.push(store.append(&message(n), &[stream]).unwrap().position);
    }
    let held = store.stats(stream).unwrap().ready_bytes;
    let segments = |dir: &Path| std::fs::read_dir(dir.join("log")).unwrap().count();
    let before = segments(dir.path());
    // The view holds one delivery in flight across the cut.
    let first = store.deliver(view).unwrap().unwrap();
    assert_eq!(first.offset, 0);
    let cut = store
        .apply_retention(stream, None, Some(2 << 20), 0)
        .unwrap();
    assert!(cut > 0);
    let bounds = store.stream_bounds(stream).unwrap();
    assert_eq!(bounds.first, cut);
    // Whole segments: the first kept message begins a segment.
    let segment = 1u64 << 20;
    assert_eq!(positions[cut as usize] % segment, 0, "cut at {cut}");
    let kept = store.stats(stream).unwrap().ready_bytes;
    assert!(
        kept <= 2 << 20 && kept + segment > 2 << 20,
        "{kept} of {held}"
    );
    // The view skips to the new first offset; its delivery stays its own.
    assert_eq!(store.stats(view).unwrap().unacked, 1);
    assert_eq!(store.deliver(view).unwrap().unwrap().offset, cut);
    assert!(store.ack(view, 0).unwrap());
    store.ack(view, cut).unwrap();
    store.release_consumed().unwrap();
    assert!(segments(dir.path()) < before, "segments were freed");
    // By age: every message is older than the limit, but the segment
    // being written is never cut.
    let cut = store
        .apply_retention(stream, Some(1), None, u64::MAX / 2)
        .unwrap();
    assert!(cut > 0);
    let bounds = store.stream_bounds(stream).unwrap();
    assert!(bounds.first < bounds.end);
    assert!(positions[bounds.first as usize] % segment == 0);
}

#[test]
fn deleting_a_stream_deletes_its_views() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stream = store.create_queue("s", FlushMode::Async).unwrap();
    let (view, _) = store.create_view(stream, "s/g", 0).unwrap();
    store.append(&message(0), &[stream]).unwrap();
    store.delete_queue(stream).unwrap();
    assert!(store.queue_id("s/g").is_none());
    assert!(matches!(
        store.deliver(view),
        Err(StorageError::NoSuchQueue(_))
    ));
    drop(store);
    let store = open(dir.path());
    assert!(store.queue_id("s/g").is_none());
}
