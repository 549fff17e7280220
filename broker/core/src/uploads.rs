//! The broker-wide budget for plugin uploads in progress. Each channel
//! buffers the pieces of its upload (at most `MAX_PLUGIN_BYTES`) until
//! `PluginLoad`; without a global cap, one administrator connection with
//! many channels held gigabytes of partial uploads (issue 12). Every
//! buffered byte is reserved here first and given back when the upload is
//! loaded, refused or its channel ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::limits::Limits;
use super::{Broker, BrokerError};

pub struct UploadBudget {
    max: u64,
    used: Arc<AtomicU64>,
}

impl UploadBudget {
    pub fn new(max: u64) -> Self {
        UploadBudget {
            max,
            used: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Bytes one upload holds of the budget; returned when dropped.
pub struct UploadReservation {
    max: u64,
    used: Arc<AtomicU64>,
    bytes: u64,
}

impl UploadReservation {
    /// Reserves `more` bytes, or fails naming the limit.
    pub fn grow(&mut self, more: u64) -> Result<(), BrokerError> {
        let max = self.max;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&total| total <= max)
            })
            .map_err(|used| {
                Limits::reached(
                    "max_upload_bytes",
                    max,
                    &format!(
                        "plugin uploads in progress hold {used} bytes and this piece of {more} \
                         would pass the broker's limit for all uploads together; retry when \
                         other uploads have finished"
                    ),
                )
            })?;
        self.bytes += more;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for UploadReservation {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Broker {
    /// An empty reservation against the broker-wide upload budget.
    pub fn upload_reservation(&self) -> UploadReservation {
        UploadReservation {
            max: self.uploads.max,
            used: self.uploads.used.clone(),
            bytes: 0,
        }
    }

    /// Bytes of plugin uploads buffered now, all channels together.
    pub fn upload_bytes_in_progress(&self) -> u64 {
        self.uploads.used.load(Ordering::Acquire)
    }
}
