//! Reading the log itself, record by record, from a position: for a
//! layer above that keeps its own memory of what was stored (the broker's
//! inbox of forwarded messages) and must catch up with records appended
//! after it last wrote that memory down.

use super::super::log::Scanned;
use super::super::record::{QueueId, StoredMessage};
use super::MessageStore;

impl MessageStore {
    /// Where the next record will be appended.
    pub fn log_end(&self) -> u64 {
        self.inner.writer.lock().unwrap().position
    }

    /// Calls `visit` with every intact record from `from` (or the oldest
    /// retained, if later) to the end, and the names of the queues it was
    /// appended to. Damaged records are skipped.
    pub fn scan_records(&self, from: u64, mut visit: impl FnMut(&StoredMessage, &[String])) {
        let oldest = self.inner.log.bases().first().copied().unwrap_or(0);
        let queues = self.inner.queues.read().unwrap();
        let name_of = |id: &QueueId| queues.get(id).map(|q| q.name.clone());
        self.inner.log.scan(from.max(oldest), |_, scanned| {
            if let Scanned::Record(record) = scanned {
                let names: Vec<String> = record.queues.iter().filter_map(name_of).collect();
                visit(&record.message, &names);
            }
        });
    }
}
