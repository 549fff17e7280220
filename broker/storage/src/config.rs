//! Storage configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a queue's messages count as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// Confirmed once in the page cache; flushed every `flush_interval` or
    /// `flush_bytes`, whichever comes first.
    #[default]
    Async,
    /// Confirmed only after msync covered the record (its index entries
    /// are re-derived from the log by recovery); concurrent appends share
    /// one flush (group commit).
    Sync,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Bytes per commit-log segment (a record never spans segments).
    pub segment_size: usize,
    /// Entries per queue-index file (24 bytes each).
    pub index_entries_per_file: u64,
    /// Async mode: flush at least this often…
    pub flush_interval: Duration,
    /// …or when this many bytes are unflushed.
    pub flush_bytes: u64,
    /// How often consumption state and the recovery checkpoint are written.
    pub checkpoint_interval: Duration,
    /// Refuse appends that would grow the log past this many bytes on disk.
    pub max_log_bytes: Option<u64>,
    /// Refuse messages while less than this would stay free on the disk
    /// (headroom for acks, checkpoints, metadata and restarts); `None`: a
    /// sixteenth of the filesystem, at most 50 MiB.
    pub disk_free_limit: Option<u64>,
    /// File handles a queue's new index file must leave free (for the
    /// log's segments, the metadata and connections).
    pub file_handle_reserve: u32,
}

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            // Consumed segments are released whole: smaller ones give
            // their disk space and page-cache pages back sooner. Pages
            // reused soon after release are cheap to fault in again; fresh
            // ones cost ~10 µs each to zero on this project's VMs (a
            // quarter of the broker's CPU at 1 GiB; docs/BENCHMARKS.md).
            segment_size: 128 << 20,
            index_entries_per_file: 1 << 20,
            flush_interval: Duration::from_millis(200),
            flush_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(1),
            max_log_bytes: None,
            disk_free_limit: None,
            file_handle_reserve: 512,
        }
    }

    /// Small files, for tests.
    pub fn small(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            segment_size: 1 << 20,
            index_entries_per_file: 1024,
            ..StoreConfig::new(dir)
        }
    }
}
