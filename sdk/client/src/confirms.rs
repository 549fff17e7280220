//! Publisher confirms: the broker confirms, drops as duplicates or refuses
//! ranges of sequence numbers; each publish (or batch) waits on one
//! [`Confirmation`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::Error;

/// Resolves when the broker has confirmed a publish (or every message of a
/// batch): `Ok(())`, or the first refusal with the broker's reason. A
/// message the exchange's filter drops as a duplicate of one already
/// published counts as confirmed (it is not lost);
/// [`Confirmation::outcome`] tells the two apart.
pub struct Confirmation {
    state: ConfirmationState,
}

enum ConfirmationState {
    Ready(Option<Result<Confirmed, Error>>),
    Waiting(oneshot::Receiver<Result<Confirmed, Error>>),
}

/// What the broker did with a confirmed publish or batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmed {
    duplicates: Vec<usize>,
}

impl Confirmed {
    /// Positions in the batch (0 for a single publish) of the messages the
    /// exchange's filter dropped as duplicates: confirmed, not stored again.
    pub fn duplicates(&self) -> &[usize] {
        &self.duplicates
    }

    /// A single publish was dropped as a duplicate (for a batch: any
    /// message was).
    pub fn is_duplicate(&self) -> bool {
        !self.duplicates.is_empty()
    }
}

impl Confirmation {
    pub(crate) fn ready() -> Self {
        Confirmation {
            state: ConfirmationState::Ready(Some(Ok(Confirmed::default()))),
        }
    }

    pub(crate) fn waiting(rx: oneshot::Receiver<Result<Confirmed, Error>>) -> Self {
        Confirmation {
            state: ConfirmationState::Waiting(rx),
        }
    }

    /// Waits like `.await` does, and also reports which messages were
    /// dropped as duplicates (nothing is known without confirm mode).
    pub async fn outcome(mut self) -> Result<Confirmed, Error> {
        std::future::poll_fn(|cx| self.poll_outcome(cx)).await
    }

    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Result<Confirmed, Error>> {
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

impl Future for Confirmation {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_outcome(cx).map(|r| r.map(drop))
    }
}

/// How the broker settled a range of sequence numbers.
#[derive(Clone, Copy)]
pub(crate) enum Settlement<'a> {
    /// `Confirm`: stored (or unroutable, and so confirmed).
    Confirmed,
    /// `Duplicate`: dropped by the exchange's filter.
    Duplicate,
    /// `Refuse`, with the broker's reason.
    Refused(&'a Error),
}

struct Pending {
    last: u64,
    outstanding: u64,
    duplicates: Vec<usize>,
    refusal: Option<Error>,
    done: oneshot::Sender<Result<Confirmed, Error>>,
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
                duplicates: Vec::new(),
                refusal: None,
                done,
            },
        );
        Confirmation::waiting(rx)
    }

    /// Applies the broker's settlement of `first..=last`.
    pub fn settle(&mut self, first: u64, last: u64, settlement: Settlement<'_>) {
        let overlapping: Vec<u64> = self
            .pending
            .range(..=last)
            .rev()
            .take_while(|(_, p)| p.last >= first)
            .map(|(start, _)| *start)
            .collect();
        for start in overlapping {
            let pending = self.pending.get_mut(&start).unwrap();
            let covered = start.max(first)..=pending.last.min(last);
            pending.outstanding = pending
                .outstanding
                .saturating_sub(covered.end() - covered.start() + 1);
            match settlement {
                Settlement::Confirmed => {}
                Settlement::Duplicate => pending
                    .duplicates
                    .extend(covered.map(|seq| (seq - start) as usize)),
                Settlement::Refused(error) => {
                    pending.refusal.get_or_insert_with(|| error.clone());
                }
            }
            if pending.outstanding == 0 {
                let pending = self.pending.remove(&start).unwrap();
                let _ = pending.done.send(match pending.refusal {
                    Some(e) => Err(e),
                    None => Ok(Confirmed {
                        duplicates: pending.duplicates,
                    }),
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
        t.settle(1, 5, Settlement::Confirmed);
        assert!(single.await.is_ok());
        t.settle(6, 10, Settlement::Confirmed);
        assert_eq!(t.len(), 2);
        t.settle(11, 12, Settlement::Refused(&refused()));
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

    #[tokio::test]
    async fn duplicates_are_confirmed_and_reported_by_position() {
        let mut t = ConfirmTracker::default();
        let single = t.track(1, 1);
        let batch = t.track(2, 5);
        let awaited = t.track(6, 6);
        t.settle(1, 1, Settlement::Duplicate);
        t.settle(2, 2, Settlement::Confirmed);
        t.settle(3, 3, Settlement::Duplicate);
        t.settle(4, 5, Settlement::Confirmed);
        t.settle(6, 6, Settlement::Duplicate);
        assert!(single.outcome().await.unwrap().is_duplicate());
        assert_eq!(batch.outcome().await.unwrap().duplicates(), [1]);
        assert!(awaited.await.is_ok(), "a duplicate is not lost");
    }
}
