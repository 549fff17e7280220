//! The storage engine through its public API: round trips, fanout storing a
//! body once, consumption state across restarts, recovery after a crash-like
//! stop, corruption of log and index files, and space limits.

use std::path::Path;

use bytes::Bytes;
use switchyard::storage::{FlushMode, MessageStore, StorageError, StoreConfig, StoredMessage};

fn message(n: u64) -> StoredMessage {
    StoredMessage {
        flags: 1,
        publish_ms: 1_700_000_000_000 + n,
        routing_key: Bytes::from(format!("key.{n}")),
        attributes: Bytes::from_static(b"attrs"),
        body: Bytes::from(format!("body-{n}-").repeat(20)),
        ..StoredMessage::default()
    }
}

fn open(dir: &Path) -> MessageStore {
    MessageStore::open(StoreConfig::small(dir)).unwrap().0
}

/// A store that never checkpoints by itself, so a crash-like stop leaves
/// everything after the last explicit checkpoint to recovery.
fn open_unchecked(dir: &Path) -> MessageStore {
    let config = StoreConfig {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..StoreConfig::small(dir)
    };
    MessageStore::open(config).unwrap().0
}

/// Appends messages 0..count to a new queue "q"; returns their positions.
fn fill(store: &MessageStore, count: u64) -> Vec<u64> {
    let q = store.create_queue("q", FlushMode::Async).unwrap();
    (0..count)
        .map(|n| store.append(&message(n), &[q]).unwrap().position)
        .collect()
}

#[test]
fn appended_messages_read_back_and_fanout_stores_the_body_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.create_queue("a", FlushMode::Async).unwrap();
    let b = store.create_queue("b", FlushMode::Async).unwrap();
    let c = store.create_queue("c", FlushMode::Sync).unwrap();
    let before = store.append(&message(0), &[a]).unwrap();
    let fanout = store.append_confirmed(&message(1), &[a, b, c]).unwrap();
    assert!(fanout.needs_sync);
    assert_eq!(fanout.offsets, vec![(a, 1), (b, 0), (c, 0)]);
    // One record, sized for one body, shared by three queues.
    let one_body = fanout.end - fanout.position;
    assert!(one_body < 2 * message(1).body.len() as u64);
    assert_eq!(before.end, fanout.position);
    for (queue, offset) in fanout.offsets {
        assert_eq!(store.read(queue, offset).unwrap(), message(1));
    }
    assert_eq!(store.read(a, 0).unwrap(), message(0));
    assert!(matches!(
        store.read(b, 1),
        Err(StorageError::OutOfRange { .. })
    ));
}

#[test]
fn acknowledged_messages_stay_acknowledged_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let q = store.create_queue("q", FlushMode::Async).unwrap();
        for n in 0..5 {
            store.append(&message(n), &[q]).unwrap();
        }
        let delivered: Vec<u64> = (0..3)
            .map(|_| store.deliver(q).unwrap().unwrap().offset)
            .collect();
        assert_eq!(delivered, vec![0, 1, 2]);
        store.ack(q, 0).unwrap();
        store.ack(q, 2).unwrap();
        store.close().unwrap();
    }
    let store = open(dir.path());
    let q = store.queue_id("q").unwrap();
    let mut again = Vec::new();
    while let Some(d) = store.deliver(q).unwrap() {
        again.push((d.offset, d.redelivered));
        assert_eq!(d.message, message(d.offset));
    }
    assert_eq!(again, vec![(1, true), (3, false), (4, false)]);
}

#[test]
fn a_multiple_ack_settles_only_what_is_in_flight_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_unchecked(dir.path());
        let q = store.create_queue("q", FlushMode::Async).unwrap();
        for n in 0..8 {
            store.append(&message(n), &[q]).unwrap();
        }
        for _ in 0..5 {
            store.deliver(q).unwrap().unwrap();
        }
        let before = store.stats(q).unwrap();
        // 0, 2 and 4 are in flight; 6 was never delivered; 2 twice.
        assert_eq!(store.ack_many(q, &[0, 2, 2, 4, 6]).unwrap(), 3);
        let after = store.stats(q).unwrap();
        assert_eq!(
            (after.unacked, after.ready, after.ready_bytes),
            (before.unacked - 3, before.ready, before.ready_bytes)
        );
        assert_eq!(store.ack_many(q, &[0, 2, 4]).unwrap(), 0, "already settled");
        // Acks are durable with the next flush: a sync append forces one.
        let barrier = store.create_queue("barrier", FlushMode::Sync).unwrap();
        store.append_confirmed(&message(99), &[barrier]).unwrap();
        store.abandon();
    }
    let store = open(dir.path());
    let q = store.queue_id("q").unwrap();
    // What was in flight comes back flagged (so may the rest, below the
    // delivery lease); what was acknowledged does not come back.
    let mut again = Vec::new();
    while let Some(d) = store.deliver(q).unwrap() {
        assert!(d.redelivered || d.offset >= 5, "offset {}", d.offset);
        again.push(d.offset);
    }
    assert_eq!(again, vec![1, 3, 5, 6, 7]);
}

#[test]
fn a_crash_before_any_checkpoint_loses_nothing_that_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_unchecked(dir.path());
    let q = store.create_queue("q", FlushMode::Sync).unwrap();
    let r = store.create_queue("r", FlushMode::Async).unwrap();
    // Enough to span several 1 MiB segments.
    for n in 0..3000 {
        let queues: &[u32] = if n % 2 == 0 { &[q, r] } else { &[q] };
        store.append_confirmed(&message(n), queues).unwrap();
    }
    store.abandon();
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    assert_eq!(report.records_replayed, 3000);
    assert_eq!(store.stats(q).unwrap().stored, 3000);
    assert_eq!(store.stats(r).unwrap().stored, 1500);
    for n in [0u64, 1499, 2999] {
        assert_eq!(store.read(q, n).unwrap(), message(n));
    }
    assert_eq!(store.read(r, 1499).unwrap(), message(2998));
}

#[test]
fn recovery_replays_only_what_follows_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let q = store.create_queue("q", FlushMode::Async).unwrap();
    for n in 0..2000 {
        store.append(&message(n), &[q]).unwrap();
    }
    store.checkpoint().unwrap();
    for n in 2000..2010 {
        store.append(&message(n), &[q]).unwrap();
    }
    store.abandon();
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    assert_eq!(report.records_replayed, 10);
    assert_eq!(store.stats(q).unwrap().stored, 2010);
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0x5a]).unwrap();
}

/// Writes `count` messages to queue "q" and stops without a checkpoint, so
/// recovery must read the log. Returns the record positions.
fn write_unchecked(dir: &Path, count: u64) -> Vec<u64> {
    let store = open_unchecked(dir);
    let q = store.create_queue("q", FlushMode::Async).unwrap();
    let positions = (0..count)
        .map(|n| store.append(&message(n), &[q]).unwrap().position)
        .collect();
    store.checkpoint().unwrap();
    store.abandon();
    positions
}

#[test]
fn a_flipped_byte_in_the_log_tail_drops_from_there_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let positions = write_unchecked(dir.path(), 100);
    // Damage record 90 (all in the first 1 MiB segment), in its body.
    let segment = &segment_files(dir.path())[0];
    flip_byte(segment, positions[90] + 100);
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    // The checkpoint covered all 100 records, so the damage is found on read.
    let q = store.queue_id("q").unwrap();
    assert!(report.damage.is_empty());
    assert_eq!(store.read(q, 89).unwrap(), message(89));
    let error = store.read(q, 90).unwrap_err();
    assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
    assert_eq!(store.read(q, 91).unwrap(), message(91));
}

#[test]
fn a_flipped_byte_after_the_checkpoint_costs_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_unchecked(dir.path());
    let positions = fill(&store, 50);
    store.abandon();
    flip_byte(&segment_files(dir.path())[0], positions[40] + 60);
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    let q = store.queue_id("q").unwrap();
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    let damage = &report.damage[0];
    assert!(damage.contains("00000000000000000000.seg"), "{damage}");
    assert!(
        damage.contains(&format!("offset {}", positions[40])),
        "{damage}"
    );
    assert!(damage.contains("skipped"), "{damage}");
    // The lost record keeps its place; everything after it is served.
    assert_eq!(store.stats(q).unwrap().stored, 50);
    assert!(matches!(
        store.read(q, 40),
        Err(StorageError::Corrupt { .. })
    ));
    for n in (0..40).chain(41..50) {
        assert_eq!(store.read(q, n).unwrap(), message(n));
    }
    // Delivery reports the lost one once, settles it, and goes on.
    let mut delivered = Vec::new();
    let mut corrupt = 0;
    loop {
        match store.deliver(q) {
            Ok(Some(d)) => {
                store.ack(q, d.offset).unwrap();
                delivered.push(d.offset);
            }
            Ok(None) => break,
            Err(StorageError::Corrupt { .. }) => corrupt += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(corrupt, 1);
    assert_eq!(delivered, (0..40).chain(41..50).collect::<Vec<u64>>());
    let next = store.append(&message(1000), &[q]).unwrap();
    assert_eq!(next.offsets, vec![(q, 50)]);
}

#[test]
fn a_torn_tail_after_the_checkpoint_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_unchecked(dir.path());
    let positions = fill(&store, 50);
    store.abandon();
    // Damage in the last record: nothing valid follows, as after a crash
    // in the middle of a write.
    flip_byte(&segment_files(dir.path())[0], positions[49] + 60);
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    let q = store.queue_id("q").unwrap();
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    assert!(
        report.damage[0].contains(&format!("offset {}", positions[49])),
        "{:?}",
        report.damage
    );
    assert!(
        report.damage[0].contains("truncated"),
        "{:?}",
        report.damage
    );
    assert_eq!(store.stats(q).unwrap().stored, 49);
    assert_eq!(store.read(q, 48).unwrap(), message(48));
    // The store keeps working after the cut.
    let next = store.append(&message(1000), &[q]).unwrap();
    assert_eq!(next.offsets, vec![(q, 49)]);
    assert_eq!(store.read(q, 49).unwrap(), message(1000));
}

#[test]
fn a_truncated_segment_file_keeps_everything_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_unchecked(dir.path());
    let positions = fill(&store, 50);
    store.abandon();
    let segment = &segment_files(dir.path())[0];
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(positions[30] + 10)
        .unwrap();
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    let q = store.queue_id("q").unwrap();
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    assert_eq!(store.stats(q).unwrap().stored, 30);
    assert_eq!(store.read(q, 29).unwrap(), message(29));
}

#[test]
fn a_damaged_index_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    write_unchecked(dir.path(), 100);
    // Queues 0 and 1 are the store's delay and half queues; "q" is the
    // first one created.
    let index = dir.path().join("queues/2/00000000000000000000.idx");
    flip_byte(&index, 24 * 70 + 3);
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    assert!(
        report.damage.iter().any(|d| d.contains("index entry 70")),
        "{:?}",
        report.damage
    );
    let q = store.queue_id("q").unwrap();
    assert_eq!(store.stats(q).unwrap().stored, 100);
    for n in 0..100 {
        assert_eq!(store.read(q, n).unwrap(), message(n), "message {n}");
    }
    drop(store);

    // A truncated index file: same story.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(24 * 10)
        .unwrap();
    let (store, report) = MessageStore::open(StoreConfig::small(dir.path())).unwrap();
    assert!(
        report.damage.iter().any(|d| d.contains("index entry 10")),
        "{:?}",
        report.damage
    );
    let q = store.queue_id("q").unwrap();
    assert_eq!(store.read(q, 99).unwrap(), message(99));
}

#[test]
fn a_space_limit_fails_appends_cleanly_and_damages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        max_log_bytes: Some(2 << 20),
        ..StoreConfig::small(dir.path())
    };
    let store = MessageStore::open(config.clone()).unwrap().0;
    let q = store.create_queue("q", FlushMode::Sync).unwrap();
    let mut stored = 0;
    let error = loop {
        match store.append_confirmed(&message(stored), &[q]) {
            Ok(_) => stored += 1,
            Err(error) => break error,
        }
    };
    assert!(matches!(error, StorageError::Full(_)), "{error}");
    assert!(error.to_string().contains("limit"), "{error}");
    // Still full for that message, and what is stored is still readable.
    assert!(store.append(&message(stored), &[q]).is_err());
    assert_eq!(store.read(q, stored - 1).unwrap(), message(stored - 1));
    drop(store);
    let (store, report) = MessageStore::open(config).unwrap();
    assert!(report.damage.is_empty());
    assert_eq!(store.stats(q).unwrap().stored, stored);
}

#[test]
fn consumed_segments_are_released_and_purge_releases_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.create_queue("a", FlushMode::Async).unwrap();
    let b = store.create_queue("b", FlushMode::Async).unwrap();
    for n in 0..9000 {
        store.append(&message(n), &[a, b]).unwrap();
    }
    let segments = segment_files(dir.path()).len();
    assert!(segments >= 3);
    while let Some(d) = store.deliver(a).unwrap() {
        store.ack(a, d.offset).unwrap();
    }
    assert_eq!(
        store.release_consumed().unwrap(),
        0,
        "queue b still needs every segment"
    );
    assert_eq!(store.purge_queue(b).unwrap(), 9000);
    let released = store.release_consumed().unwrap();
    assert_eq!(released, segments - 1, "all but the segment being written");
    assert_eq!(segment_files(dir.path()).len(), 1);
    // New messages still flow, and survive a restart.
    store.append(&message(7), &[a]).unwrap();
    store.close().unwrap();
    let store = open(dir.path());
    let d = store.deliver(a).unwrap().unwrap();
    assert_eq!(d.message, message(7));
    store.delete_queue(b).unwrap();
    assert!(!dir.path().join(format!("queues/{b}")).exists());
}

#[test]
fn consumed_segments_are_released_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        checkpoint_interval: std::time::Duration::from_millis(20),
        ..StoreConfig::small(dir.path())
    };
    let store = MessageStore::open(config).unwrap().0;
    let a = store.create_queue("a", FlushMode::Async).unwrap();
    let doomed = store.create_queue("doomed", FlushMode::Async).unwrap();
    for n in 0..9000 {
        store.append(&message(n), &[a, doomed]).unwrap();
    }
    assert!(segment_files(dir.path()).len() >= 3);
    while let Some(d) = store.deliver(a).unwrap() {
        store.ack(a, d.offset).unwrap();
    }
    // Queue `doomed` still needs every record until it is deleted; then the
    // flusher's next checkpoints free the log with no call from outside.
    store.delete_queue(doomed).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while segment_files(dir.path()).len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed segments still on disk: {:?}",
            segment_files(dir.path())
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    store.append(&message(9001), &[a]).unwrap();
    store.close().unwrap();
    let store = open(dir.path());
    assert_eq!(store.deliver(a).unwrap().unwrap().message, message(9001));
}

#[test]
fn a_store_keeps_the_segment_size_it_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let q = store.create_queue("q", FlushMode::Async).unwrap();
    for n in 0..3000 {
        store.append(&message(n), &[q]).unwrap();
    }
    store.close().unwrap();
    // A later configuration asks for other sizes: the log is still read
    // with the sizes it was written with.
    let config = StoreConfig {
        segment_size: 4 << 20,
        index_entries_per_file: 4096,
        ..StoreConfig::small(dir.path())
    };
    let (store, report) = MessageStore::open(config).unwrap();
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    for n in 0..3000 {
        assert_eq!(store.read(q, n).unwrap(), message(n));
    }
}

#[test]
fn a_queue_accounts_for_the_log_it_holds_and_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let q = store.create_queue("q", FlushMode::Async).unwrap();
    let positions = fill_more(&store, q, 100);
    let end = store.append(&message(100), &[q]).unwrap().end;
    let space = store.space(q).unwrap();
    assert_eq!(space.log_bytes_held, end - positions[0]);
    assert!(space.index_bytes > 0);
    for _ in 0..50 {
        let d = store.deliver(q).unwrap().unwrap();
        store.ack(q, d.offset).unwrap();
    }
    // From message 50 to the end of the log (which now also holds the
    // delivery lease's small consumption record).
    let held = store.space(q).unwrap().log_bytes_held;
    assert!(
        held >= end - positions[50] && held < end - positions[49] + 128,
        "{held}"
    );
    while let Some(d) = store.deliver(q).unwrap() {
        store.ack(q, d.offset).unwrap();
    }
    assert_eq!(store.space(q).unwrap().log_bytes_held, 0);
}

fn fill_more(store: &MessageStore, q: u32, count: u64) -> Vec<u64> {
    (0..count)
        .map(|n| store.append(&message(n), &[q]).unwrap().position)
        .collect()
}

#[test]
fn acks_above_a_held_message_stay_small_in_memory_and_in_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let q = store.create_queue("q", FlushMode::Async).unwrap();
    let small = StoredMessage {
        body: Bytes::from_static(b"x"),
        ..StoredMessage::default()
    };
    for _ in 0..200_000 {
        store.append(&small, &[q]).unwrap();
    }
    // Message 0 stays unacknowledged; every later one is acked.
    let held = store.deliver(q).unwrap().unwrap();
    while let Some(d) = store.deliver(q).unwrap() {
        store.ack(q, d.offset).unwrap();
    }
    store.checkpoint().unwrap();
    let persisted: serde_json::Value = store
        .metadata()
        .get("store-consumption", &q.to_string())
        .unwrap()
        .unwrap();
    let size = persisted.to_string().len();
    // 199,999 acks above the held message: one range, not 199,999 numbers
    // (which took ~1.4 MB of JSON, rewritten at every checkpoint).
    assert!(
        size < 1024,
        "the checkpointed consumption state is {size} bytes"
    );
    store.ack(q, held.offset).unwrap();
    assert_eq!(store.stats(q).unwrap().stored, 0);
}
