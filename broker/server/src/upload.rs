//! A channel's plugin upload in progress: the pieces received since the
//! last `PluginLoad`, within the per-upload and the broker-wide limits.

use switchyard_core::{Broker, BrokerError, MAX_PLUGIN_BYTES, Principal, UploadReservation};

/// The pieces of a plugin component received so far on this channel.
#[derive(Default)]
pub struct PluginUploadBuffer {
    pub bytes: Vec<u8>,
    /// The buffered bytes' share of the broker-wide upload budget.
    reserved: Option<UploadReservation>,
    /// Set when a piece was dropped: the upload is refused at `PluginLoad`.
    pub refused: Option<BrokerError>,
}

impl PluginUploadBuffer {
    /// Keeps a piece; non-administrators, oversized uploads and uploads
    /// past the broker-wide budget are refused, and what was buffered is
    /// let go at once.
    pub fn add(&mut self, broker: &Broker, principal: &Principal, piece: &[u8]) {
        if self.refused.is_some() {
            return;
        }
        let kept = principal
            .require_administrator("loading a plugin")
            .and_then(|()| {
                if self.bytes.len() + piece.len() > MAX_PLUGIN_BYTES {
                    return Err(BrokerError::invalid_argument(format!(
                        "the component is larger than {MAX_PLUGIN_BYTES} bytes, the most a plugin may be"
                    )));
                }
                self.reserved
                    .get_or_insert_with(|| broker.upload_reservation())
                    .grow(piece.len() as u64)
            });
        match kept {
            Ok(()) => self.bytes.extend_from_slice(piece),
            Err(e) => {
                self.refused = Some(e);
                self.bytes = Vec::new();
                self.reserved = None;
            }
        }
    }
}
