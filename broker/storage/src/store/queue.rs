//! One queue of the store: its index, its consumption state, and the bytes
//! it holds — stored (not yet settled) and in flight — kept as messages
//! come, go out, come back and are settled, so that `ready_bytes` (what
//! `max-length-bytes` limits) costs nothing to read. A message's bytes are
//! its record's length in the log (headers, routing key and properties
//! included), read from its index entry.
//!
//! Lock order: a queue's index before its consumption state, never the
//! other way round (byte lookups take the index alone).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::super::config::{FlushMode, StoreConfig};
use super::super::consumption::Consumption;
use super::super::error::StorageError;
use super::super::index::QueueIndex;
use super::super::metadata::Metadata;
use super::super::record::QueueId;
use super::QUEUES_TREE;

pub(super) struct Queue {
    pub(super) id: QueueId,
    pub(super) name: String,
    pub(super) flush: FlushMode,
    /// The queue whose index this one reads: itself, or — for a view, a
    /// consumer group's own position in a stream (store/views.rs) — the
    /// stream. Records name only sources; a view is never appended to.
    pub(super) source: QueueId,
    /// Shared by a stream and its views.
    pub(super) index: Arc<Mutex<QueueIndex>>,
    pub(super) consumption: Mutex<Consumption>,
    /// Bytes of the messages not yet settled.
    stored_bytes: AtomicU64,
    /// Bytes of the messages in flight (delivered, not settled).
    in_flight_bytes: AtomicU64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QueueMeta {
    pub(super) id: QueueId,
    pub(super) name: String,
    pub(super) flush: FlushMode,
    /// Set for a view: the stream whose index it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) view_of: Option<QueueId>,
}

fn add(counter: &AtomicU64, bytes: u64) {
    counter.fetch_add(bytes, Ordering::Relaxed);
}

fn sub(counter: &AtomicU64, bytes: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(bytes))
    });
}

impl Queue {
    pub(super) fn new(
        id: QueueId,
        name: String,
        flush: FlushMode,
        index: Arc<Mutex<QueueIndex>>,
        consumption: Consumption,
        source: QueueId,
    ) -> Queue {
        Queue {
            id,
            name,
            flush,
            source,
            index,
            consumption: Mutex::new(consumption),
            stored_bytes: AtomicU64::new(0),
            in_flight_bytes: AtomicU64::new(0),
        }
    }

    /// The bytes of message `offset` (0 if its entry is unreadable).
    /// Whether this is one of the store's own queues (delays, half
    /// messages): their names begin with NUL, which broker names cannot.
    pub(super) fn is_hidden(&self) -> bool {
        self.name.starts_with('\u{0}')
    }

    /// Whether this is a view of another queue's index.
    pub(super) fn is_view(&self) -> bool {
        self.source != self.id
    }

    pub(super) fn entry_len(&self, offset: u64) -> u64 {
        self.index
            .lock()
            .unwrap()
            .get(offset)
            .map_or(0, |entry| u64::from(entry.len))
    }

    /// A message of `len` bytes was appended.
    pub(super) fn appended(&self, len: u64) {
        add(&self.stored_bytes, len);
    }

    /// `offset` went out to a consumer.
    pub(super) fn taken(&self, offset: u64) {
        add(&self.in_flight_bytes, self.entry_len(offset));
    }

    /// A delivery came back to the queue (requeued, consumer gone).
    pub(super) fn returned(&self, len: u64) {
        sub(&self.in_flight_bytes, len);
    }

    /// A message was settled: from flight (ack, reject) or not.
    pub(super) fn settled(&self, len: u64, was_in_flight: bool) {
        sub(&self.stored_bytes, len);
        if was_in_flight {
            sub(&self.in_flight_bytes, len);
        }
    }

    /// Bytes of the ready messages (neither settled nor in flight).
    pub(super) fn ready_bytes(&self) -> u64 {
        let stored = self.stored_bytes.load(Ordering::Relaxed);
        stored.saturating_sub(self.in_flight_bytes.load(Ordering::Relaxed))
    }

    /// Counts the bytes again from the index and the consumption state
    /// (after opening, and after a purge).
    pub(super) fn recount_bytes(&self) {
        let index = self.index.lock().unwrap();
        let consumption = self.consumption.lock().unwrap();
        let len = |offset: u64| index.get(offset).map_or(0, |e| u64::from(e.len));
        let stored: u64 = (consumption.low_water()..index.end())
            .filter(|&o| o >= consumption.floor && !consumption.acked.contains(o))
            .map(len)
            .sum();
        let in_flight: u64 = consumption.in_flight.iter().map(|&o| len(o)).sum();
        self.stored_bytes.store(stored, Ordering::Relaxed);
        self.in_flight_bytes.store(in_flight, Ordering::Relaxed);
    }
}

/// A new, empty queue, recorded in the metadata.
pub(super) fn new_queue(
    config: &StoreConfig,
    meta: &Metadata,
    id: QueueId,
    name: &str,
    flush: FlushMode,
) -> Result<Arc<Queue>, StorageError> {
    let index = QueueIndex::open(&queue_dir(config, id), config.index_entries_per_file)?;
    let record = QueueMeta {
        id,
        name: name.into(),
        flush,
        view_of: None,
    };
    meta.put(QUEUES_TREE, &id.to_string(), &record)?;
    meta.flush()?;
    Ok(Arc::new(Queue::new(
        id,
        name.into(),
        flush,
        Arc::new(Mutex::new(index)),
        Consumption::starting_at(0),
        id,
    )))
}

pub(super) fn queue_dir(config: &StoreConfig, id: QueueId) -> std::path::PathBuf {
    config.dir.join("queues").join(id.to_string())
}
