//! How much topology a vhost may hold, and the file handles the broker
//! keeps for itself. Each queue holds an open index file: with no bound,
//! one tenant declaring queues until the process ran out of file handles
//! stopped the commit log from opening its next segment, and publishes
//! failed for every tenant. So a vhost holds at most
//! `limits.max_queues_per_vhost` queues (`max_exchanges_per_vhost`
//! exchanges, `max_bindings_per_exchange` bindings on one exchange), and a
//! queue is created (and, in the store, opens its next index file) only
//! while `limits.file_handle_reserve` handles stay free for the log, the
//! metadata and the HTTP listener's connections.

use switchyard_storage::file_handles::file_handles_left;

use super::error::BrokerError;
use super::exchange::Exchange;
use super::limits::Limits;
use super::records::BindingRecord;
use super::{Broker, Vhost};

impl Broker {
    /// Whether `vhost` may take one more queue.
    pub(crate) fn admit_queue(&self, vhost: &Vhost) -> Result<(), BrokerError> {
        let limits = self.limits();
        let held = vhost.queues.read().unwrap().len() as u64;
        if held >= u64::from(limits.max_queues_per_vhost) {
            return Err(Limits::reached(
                "max_queues_per_vhost",
                limits.max_queues_per_vhost,
                &format!("vhost '{}' holds {held} queues", vhost.name),
            ));
        }
        Ok(file_handles_left(limits.file_handle_reserve)?)
    }

    /// Whether `vhost` may take one more exchange.
    pub(crate) fn admit_exchange(&self, vhost: &Vhost) -> Result<(), BrokerError> {
        let limits = self.limits();
        let held = vhost.exchanges.read().unwrap().len() as u64;
        if held >= u64::from(limits.max_exchanges_per_vhost) {
            return Err(Limits::reached(
                "max_exchanges_per_vhost",
                limits.max_exchanges_per_vhost,
                &format!("vhost '{}' holds {held} exchanges", vhost.name),
            ));
        }
        Ok(())
    }

    /// Whether `exchange` may take `binding` (one it has is no more).
    pub(crate) fn admit_binding(
        &self,
        exchange: &Exchange,
        binding: &BindingRecord,
    ) -> Result<(), BrokerError> {
        let limits = self.limits();
        let held = exchange.binding_count() as u64;
        if held >= u64::from(limits.max_bindings_per_exchange) && !exchange.has_binding(binding) {
            return Err(Limits::reached(
                "max_bindings_per_exchange",
                limits.max_bindings_per_exchange,
                &format!("exchange '{}' has {held} bindings", exchange.name()),
            ));
        }
        Ok(())
    }
}
