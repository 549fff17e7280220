//! Queue expiry (`expires`): a queue unused for its lease — no consumers,
//! no `get`, no redeclare — is deleted. The time of last use is kept in
//! the metadata (written by the sweep when it changed, so at most once per
//! sweep interval per queue), so a restart does not renew the lease.

use std::sync::Arc;

use super::queue::Queue;
use super::{Broker, Vhost};
use switchyard_storage::metadata::key;

/// The metadata tree of durable queues' last use (ms since the epoch).
const QUEUE_USE: &str = "queue-use";

impl Broker {
    /// When the durable queue `name` of `vhost` was last used, as recorded
    /// (`None` if never recorded).
    pub(super) fn recorded_use(&self, vhost: &str, name: &str) -> Option<u64> {
        self.store
            .metadata()
            .get(QUEUE_USE, &key(&[vhost, name]))
            .ok()
            .flatten()
    }

    /// Records a durable expiring queue's last use (if it changed since
    /// last recorded).
    pub(super) fn record_use(&self, queue: &Queue) {
        if !queue.record.durable
            || queue.settings.expires_ms.is_none()
            || !queue.note_recorded_use(queue.last_used_ms())
        {
            return;
        }
        let k = key(&[&queue.record.vhost, queue.name()]);
        if let Err(e) = self
            .store
            .metadata()
            .put(QUEUE_USE, &k, &queue.last_used_ms())
        {
            tracing::warn!(queue = queue.name(), error = %e, "recording a queue's last use");
        }
    }

    /// Forgets a deleted queue's last use.
    pub(super) fn forget_use(&self, vhost: &str, name: &str) {
        let _ = self
            .store
            .metadata()
            .remove(QUEUE_USE, &key(&[vhost, name]));
    }

    /// Deletes every queue whose `expires` lease ran out, and records the
    /// last use of the others; returns the names deleted.
    pub fn expire_unused_queues(&self) -> Vec<String> {
        let now = self.now_ms();
        let vhosts: Vec<Arc<Vhost>> = self.vhosts.read().unwrap().values().cloned().collect();
        let mut deleted = Vec::new();
        for vhost in vhosts {
            let queues: Vec<Arc<Queue>> = vhost.queues.read().unwrap().values().cloned().collect();
            for queue in queues {
                let Some(lease) = queue.settings.expires_ms else {
                    continue;
                };
                if queue.consumer_count() > 0 {
                    continue;
                }
                if now.saturating_sub(queue.last_used_ms()) < lease {
                    self.record_use(&queue);
                    continue;
                }
                match self.remove_queue(&vhost, queue.name()) {
                    Ok(()) => {
                        tracing::info!(
                            vhost = %vhost.name,
                            queue = queue.name(),
                            unused_ms = now.saturating_sub(queue.last_used_ms()),
                            "queue expired: unused for its 'expires' lease"
                        );
                        deleted.push(queue.name().to_string());
                    }
                    Err(e) => tracing::warn!(queue = queue.name(), error = %e, "expiring a queue"),
                }
            }
        }
        deleted
    }
}
