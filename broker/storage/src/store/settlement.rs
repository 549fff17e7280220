//! Whether one message of a queue is settled: for a layer that waits for
//! a particular message to be acknowledged (an end-to-end confirm waits
//! for its outbox message to be confirmed by the other cell).

use super::super::error::StorageError;
use super::super::record::QueueId;
use super::MessageStore;

impl MessageStore {
    /// Whether `offset` of `queue` is acknowledged.
    pub fn is_settled(&self, queue: QueueId, offset: u64) -> Result<bool, StorageError> {
        self.with_consumption(queue, |c| offset < c.floor || c.acked.contains(offset))
    }
}
