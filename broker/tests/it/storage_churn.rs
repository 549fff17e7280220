//! Churn: 3 GB published and consumed through a store with small segments,
//! a producer and a consumer running at once. Retention keeps the data
//! directory under a bound (consumed segments go at every checkpoint); a
//! restart afterwards loses nothing that was not consumed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchyard::storage::{FlushMode, MessageStore, StoreConfig, StoredMessage};

const SEGMENT: usize = 8 << 20;
const BODY: usize = 64 << 10;
const TOTAL_BYTES: u64 = 3 << 30;
/// What the directory may hold at any moment: the segment being written
/// and the consumed ones awaiting the next checkpoint — as many as the
/// producer fills while the flusher is busy (a flush of up to 64 MiB, then
/// the checkpoint): a few dozen on a slow disk — plus index files and
/// metadata. A twelfth of what went through.
const BOUND: u64 = 32 * SEGMENT as u64 + (32 << 20);
/// The producer waits when the consumer lags this far behind.
const MAX_LAG: u64 = 32;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_size: SEGMENT,
        index_entries_per_file: 4096,
        checkpoint_interval: Duration::from_millis(50),
        ..StoreConfig::new(dir)
    }
}

fn message(n: u64) -> StoredMessage {
    let mut body = vec![(n % 251) as u8; BODY];
    body[..8].copy_from_slice(&n.to_le_bytes());
    StoredMessage {
        publish_ms: n,
        body: Bytes::from(body),
        ..StoredMessage::default()
    }
}

fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            // Allocated blocks, not apparent size: segments are sparse.
            use std::os::unix::fs::MetadataExt;
            total += meta.blocks() * 512;
        }
    }
    total
}

#[test]
fn three_gigabytes_churn_through_a_bounded_directory() {
    let dir = tempfile::tempdir().unwrap();
    let count = TOTAL_BYTES / BODY as u64;
    let store = Arc::new(MessageStore::open(config(dir.path())).unwrap().0);
    let q = store.create_queue("churn", FlushMode::Async).unwrap();
    // One token per appended message, at most MAX_LAG outstanding: the
    // producer stays close ahead of the consumer, as with a live consumer.
    let (appended, tokens) = std::sync::mpsc::sync_channel::<u64>(MAX_LAG as usize);
    let consumer = {
        let store = store.clone();
        std::thread::spawn(move || {
            // Consumes all but the last 100 messages, acking each.
            for n in tokens {
                if n >= count - 100 {
                    continue;
                }
                let d = store.deliver(q).unwrap().expect("an appended message");
                assert_eq!(d.offset, n);
                assert_eq!(d.message, message(n), "offset {n}");
                store.ack(q, n).unwrap();
            }
        })
    };
    let mut peak = 0;
    for n in 0..count {
        store.append(&message(n), &[q]).unwrap();
        appended.send(n).unwrap();
        if n % 1024 == 0 {
            peak = peak.max(disk_usage(dir.path()));
        }
    }
    drop(appended);
    consumer.join().unwrap();
    eprintln!(
        "churn: {count} messages of {BODY} bytes ({} MiB), peak directory size {} MiB (bound {} MiB)",
        TOTAL_BYTES >> 20,
        peak >> 20,
        BOUND >> 20
    );
    assert!(peak <= BOUND, "the directory grew to {peak} bytes");

    // A restart: the 100 unconsumed messages are all there.
    drop(Arc::try_unwrap(store).ok().expect("the consumer is done"));
    let store = MessageStore::open(config(dir.path())).unwrap().0;
    let q = store.queue_id("churn").unwrap();
    let mut left = Vec::new();
    while let Some(d) = store.deliver(q).unwrap() {
        assert_eq!(d.message, message(d.offset));
        left.push(d.offset);
    }
    assert_eq!(left, (count - 100..count).collect::<Vec<u64>>());
    assert!(disk_usage(dir.path()) <= BOUND);
}
