//! The storage engine (RocketMQ's design): one commit log of fixed-size,
//! preallocated, mmap'd segments holding every message once; per-queue
//! indexes of fixed-size entries pointing into it; consumption state and
//! metadata in sled; async or sync (group-commit) flushing; recovery from
//! the last checkpoint that verifies checksums and cuts a torn tail.
//! No networking here. The on-disk format is in docs/STORAGE.md.

mod config;
mod consumption;
mod consumption_log;
mod disk_space;
mod error;
pub mod file_handles;
mod index;
mod layout;
mod log;
pub mod metadata;
mod offset_set;
mod prefault;
mod record;
mod segment;
mod store;
mod timer_wheel;

pub use config::{FlushMode, StoreConfig};
pub use consumption::{Consumption, Delivery};
pub use error::StorageError;
pub use index::{ENTRY_LEN, IndexEntry};
pub use layout::MIN_SEGMENT_SIZE;
pub use metadata::Metadata;
pub use record::{FLAG_PERSISTENT, QueueId, StoredMessage};
pub use store::{
    Appended, Commit, Delivered, DurableFuture, HalfMessage, LogFiles, MessageStore, Promotion,
    QueueSpace, QueueStats, RecoveryReport, StorageStats, StreamBounds,
};
