//! Storage errors. Each names what failed (file, queue) and why.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },

    /// Out of space, or over a configured limit. Nothing stored is harmed;
    /// the append that hit it failed as a whole.
    #[error("storage full: {0}")]
    Full(String),

    #[error("message {0} is larger than a segment can hold")]
    TooLarge(usize),

    #[error("no queue with id {0}")]
    NoSuchQueue(u32),

    #[error("queue offset {offset} is not stored (the queue holds {start}..{end})")]
    OutOfRange { offset: u64, start: u64, end: u64 },

    #[error("corrupt data at {location}: {reason}")]
    Corrupt { location: String, reason: String },

    #[error("metadata store: {0}")]
    Metadata(String),

    /// Refused for now: something is in use (a view with deliveries in
    /// flight cannot be reset).
    #[error("busy: {0}")]
    Busy(String),

    #[error("the store is closed")]
    Closed,
}

impl StorageError {
    pub(crate) fn io(path: &Path, error: impl std::fmt::Display) -> Self {
        StorageError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }

    pub(crate) fn metadata(error: impl std::fmt::Display) -> Self {
        StorageError::Metadata(error.to_string())
    }
}
