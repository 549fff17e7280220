//! Memory for frames not yet complete. A reader buffers a frame until its
//! last byte arrives; a peer that declares large frames and never finishes
//! them would pin that memory for as long as it likes (192 channels each
//! one byte short of an 8 MiB frame held 1.67 GB, issue 27). A reader with
//! a [`FrameBudget`] reserves a large frame's bytes before it reads them,
//! from its connection's share and from a process-wide pool; while it
//! cannot, it stops reading, and QUIC flow control stops the peer. A frame
//! must also finish within a deadline, so a stalled one cannot keep its
//! reservation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Frames up to this size (length prefix included) are read without a
/// reservation: what a reader holds unreserved is at most about twice this
/// (a partial small frame and one read), which keeps the many small frames
/// of a busy channel off the semaphores.
pub const UNRESERVED_FRAME: usize = 64 << 10;

/// The pool all connections of a process draw on.
#[derive(Clone)]
pub struct SharedBudget {
    total: Arc<Semaphore>,
    frame_timeout: Duration,
}

impl SharedBudget {
    /// `total` bytes of unfinished large frames at once; a frame must
    /// finish within `frame_timeout` of the reader waiting for it.
    pub fn new(total: usize, frame_timeout: Duration) -> Self {
        SharedBudget {
            total: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            frame_timeout,
        }
    }

    /// One connection's budget: `per_connection` bytes of its own, drawn
    /// from the pool too. It must hold the largest frame the connection
    /// may send, or that frame could never be read.
    pub fn connection(&self, per_connection: usize) -> FrameBudget {
        FrameBudget {
            connection: Arc::new(Semaphore::new(per_connection.min(Semaphore::MAX_PERMITS))),
            shared: self.clone(),
        }
    }
}

/// A connection's budget, shared by the readers of its streams.
#[derive(Clone)]
pub struct FrameBudget {
    connection: Arc<Semaphore>,
    shared: SharedBudget,
}

/// The bytes of one frame in progress; given back when dropped (the frame
/// decoded, or its reader gone).
pub struct Reservation {
    _connection: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl FrameBudget {
    pub fn frame_timeout(&self) -> Duration {
        self.shared.frame_timeout
    }

    /// Waits until `bytes` are free in the connection's share and in the
    /// pool. The connection's share is taken first: a connection waiting
    /// for the pool then holds up only its own other streams.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        // The semaphores are never closed.
        let connection = self
            .connection
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the frame budget's semaphores are never closed");
        let total = self
            .shared
            .total
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the frame budget's semaphores are never closed");
        Reservation {
            _connection: connection,
            _total: total,
        }
    }

    /// Bytes free in the pool, for tests and metrics.
    pub fn available_total(&self) -> usize {
        self.shared.total.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_both_shares_and_come_back_when_dropped() {
        let shared = SharedBudget::new(100, Duration::from_secs(1));
        let a = shared.connection(60);
        let b = shared.connection(60);
        let first = a.reserve(60).await;
        // The connection's share is used up: a second frame of `a` waits.
        let waiting = tokio::time::timeout(Duration::from_millis(50), a.reserve(1)).await;
        assert!(waiting.is_err());
        // `b` has its own share but the pool has only 40 left.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.reserve(50))
                .await
                .is_err()
        );
        let small = b.reserve(40).await;
        assert_eq!(a.available_total(), 0);
        drop(first);
        let _again = a.reserve(60).await;
        drop(small);
        assert_eq!(b.available_total(), 40);
    }
}
