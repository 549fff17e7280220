//! How a transaction (a half message) ends, or what a check is answered.

use crate::error::DecodeError;
use crate::wire::{Reader, Wire, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// The message becomes visible in every queue it was routed to.
    Commit,
    /// The message is discarded.
    Rollback,
    /// Not decided yet (an answer to a check): the broker asks again later.
    Unknown,
}

/// One byte: 1 commit, 2 rollback, 3 unknown.
impl Wire for TxOutcome {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(match self {
            TxOutcome::Commit => 1,
            TxOutcome::Rollback => 2,
            TxOutcome::Unknown => 3,
        });
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8()? {
            1 => Ok(TxOutcome::Commit),
            2 => Ok(TxOutcome::Rollback),
            3 => Ok(TxOutcome::Unknown),
            other => Err(DecodeError::Invalid(format!(
                "transaction outcome {other} is not 1 (commit), 2 (rollback) or 3 (unknown)"
            ))),
        }
    }
}
