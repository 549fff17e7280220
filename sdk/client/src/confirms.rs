//! Publisher confirms: the broker confirms or refuses ranges of sequence
//! numbers; each publish (or batch) waits on one [`Confirmation`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::Error;

/// Resolves when the broker has confirmed a publish (or every message of a
/// batch): `Ok(())`, or the first refusal with the broker's reason.
pub struct Confirmation {
    state: ConfirmationState,
}

enum ConfirmationState {
    Ready(Option<Result<(), Error>>),
    Waiting(oneshot::Receiver<Result<(), Error>>),
}

impl Confirmation {
    pub(crate) fn ready() -> Self {
        Confirmation {
            state: ConfirmationState::Ready(Some(Ok(()))),
        }
    }

    pub(crate) fn waiting(rx: oneshot::Receiver<Result<(), Error>>) -> Self {
        Confirmation {
            state: ConfirmationState::Waiting(rx),
        }
    }
}

impl Future for Confirmation {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            ConfirmationState::Ready(result) => {
                Poll::Ready(result.take().expect("confirmation polled after completion"))
            }
            ConfirmationState::Waiting(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or_else(|_| Err(Error::ConnectionLost("the channel ended".into())))
            }),
        }
    }
}

struct Pending {
    last: u64,
    outstanding: u64,
    refusal: Option<Error>,
    done: oneshot::Sender<Result<(), Error>>,
}

/// Publishes waiting for their confirms, keyed by first sequence number.
#[derive(Default)]
pub(crate) struct ConfirmTracker {
    pending: BTreeMap<u64, Pending>,
}

impl ConfirmTracker {
    pub fn track(&mut self, first: u64, last: u64) -> Confirmation {
        let (done, rx) = oneshot::channel();
        self.pending.insert(
            first,
            Pending {
                last,
                outstanding: last - first + 1,
                refusal: None,
                done,
            },
        );
        Confirmation::waiting(rx)
    }

    /// Applies a confirm (`refusal == None`) or refusal of `first..=last`.
    pub fn settle(&mut self, first: u64, last: u64, refusal: Option<&Error>) {
        let overlapping: Vec<u64> = self
            .pending
            .range(..=last)
            .rev()
            .take_while(|(_, p)| p.last >= first)
            .map(|(start, _)| *start)
            .collect();
        for start in overlapping {
            let pending = self.pending.get_mut(&start).unwrap();
            let covered = pending.last.min(last) - start.max(first) + 1;
            pending.outstanding = pending.outstanding.saturating_sub(covered);
            if pending.refusal.is_none() {
                pending.refusal = refusal.cloned();
            }
            if pending.outstanding == 0 {
                let pending = self.pending.remove(&start).unwrap();
                let _ = pending.done.send(match pending.refusal {
                    Some(e) => Err(e),
                    None => Ok(()),
                });
            }
        }
    }

    /// Fails everything still waiting.
    pub fn fail_all(&mut self, error: &Error) {
        for (_, pending) in std::mem::take(&mut self.pending) {
            let _ = pending.done.send(Err(error.clone()));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Error {
        Error::Request {
            code: 552,
            reason: "full".into(),
        }
    }

    #[tokio::test]
    async fn batches_resolve_when_every_member_is_settled_in_any_split() {
        let mut t = ConfirmTracker::default();
        let single = t.track(1, 1);
        let batch = t.track(2, 11);
        let other = t.track(12, 12);
        t.settle(1, 5, None);
        assert!(single.await.is_ok());
        t.settle(6, 10, None);
        assert_eq!(t.len(), 2);
        t.settle(11, 12, Some(&refused()));
        assert_eq!(batch.await.unwrap_err().code(), Some(552));
        assert_eq!(other.await.unwrap_err().code(), Some(552));
        assert_eq!(t.len(), 0);
    }

    #[tokio::test]
    async fn failing_all_reports_the_cause() {
        let mut t = ConfirmTracker::default();
        let c = t.track(1, 3);
        t.fail_all(&Error::ConnectionLost("gone".into()));
        assert!(matches!(c.await, Err(Error::ConnectionLost(_))));
    }
}
