//! Publisher confirms for one channel, released in publish order: a
//! message bound for a sync-flush queue is confirmed only once the log is
//! durable past it. Everything queued while one flush runs shares the next
//! flush (group commit across the pipeline). A message stored for another
//! cell with end-to-end confirms is confirmed once that cell confirmed it.

use std::sync::Arc;

use switchyard_protocol::Frame;
use tokio::sync::mpsc;

use switchyard_core::{Broker, BrokerError, Outcome};

/// Outcomes of publishes, by sequence number.
pub type Settled = Vec<(u64, Outcome)>;

/// Most outcomes answered by one round of confirm frames.
const MAX_ROUND: usize = 1 << 16;

pub async fn confirm_pipeline(
    broker: Arc<Broker>,
    mut settled: mpsc::Receiver<Settled>,
    out: mpsc::Sender<Frame>,
) {
    while let Some(mut round) = settled.recv().await {
        while round.len() < MAX_ROUND {
            match settled.try_recv() {
                Ok(more) => round.extend(more),
                Err(_) => break,
            }
        }
        let durable_after = round
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Stored { durable_after } => *durable_after,
                _ => None,
            })
            .max();
        let mut flush_error = None;
        if let Some(point) = durable_after {
            flush_error = broker.durable(point).await.err();
        }
        for (_, outcome) in &mut round {
            if let Outcome::Forwarding { cell, offset } = outcome
                && let Err(e) = broker.wait_forwarded(cell, *offset).await
            {
                *outcome = Outcome::Refused(e);
            }
        }
        for frame in frames(&round, flush_error.as_ref()) {
            if out.send(frame).await.is_err() {
                return;
            }
        }
    }
}

/// The frame that settles one publish.
enum Answer {
    Confirm,
    Duplicate,
    Refuse(BrokerError),
}

/// Coalesces consecutive outcomes into Confirm / Duplicate / Refuse frames.
pub fn frames(round: &[(u64, Outcome)], flush_error: Option<&BrokerError>) -> Vec<Frame> {
    let answer = |outcome: &Outcome| match outcome {
        Outcome::Stored {
            durable_after: Some(_),
        } => flush_error.cloned().map_or(Answer::Confirm, Answer::Refuse),
        // Waited for by the pipeline: the other cell confirmed it.
        Outcome::Stored { .. } | Outcome::Forwarding { .. } | Outcome::Unroutable => {
            Answer::Confirm
        }
        // The publisher must be able to tell that nothing new was stored.
        Outcome::Duplicate => Answer::Duplicate,
        Outcome::Refused(e) => Answer::Refuse(e.clone()),
    };
    let refuse = |(error, ranges): (BrokerError, Vec<(u64, u64)>)| Frame::Refuse {
        ranges,
        code: error.code,
        reason: error.message,
    };
    let mut confirmed: Vec<(u64, u64)> = Vec::new();
    let mut duplicates: Vec<(u64, u64)> = Vec::new();
    let mut refusals = Vec::new();
    let mut refused: Option<(BrokerError, Vec<(u64, u64)>)> = None;
    let extend = |ranges: &mut Vec<(u64, u64)>, seq: u64| match ranges.last_mut() {
        Some((_, last)) if *last + 1 == seq => *last = seq,
        _ => ranges.push((seq, seq)),
    };
    for (seq, outcome) in round {
        match answer(outcome) {
            Answer::Confirm => extend(&mut confirmed, *seq),
            Answer::Duplicate => extend(&mut duplicates, *seq),
            Answer::Refuse(error) => {
                if refused.as_ref().is_some_and(|(e, _)| *e != error) {
                    refusals.push(refuse(refused.take().unwrap()));
                }
                extend(
                    &mut refused.get_or_insert_with(|| (error, Vec::new())).1,
                    *seq,
                );
            }
        }
    }
    refusals.extend(refused.map(refuse));
    let mut frames = Vec::new();
    if !confirmed.is_empty() {
        frames.push(Frame::Confirm { ranges: confirmed });
    }
    if !duplicates.is_empty() {
        frames.push(Frame::Duplicate { ranges: duplicates });
    }
    frames.extend(refusals);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::DurableAt;

    #[test]
    fn outcomes_coalesce_into_ranges_by_answer() {
        let full = BrokerError::new(552, "full");
        let round = vec![
            (
                1,
                Outcome::Stored {
                    durable_after: None,
                },
            ),
            (2, Outcome::Unroutable),
            (3, Outcome::Refused(full.clone())),
            (4, Outcome::Refused(full.clone())),
            (5, Outcome::Duplicate),
            (
                6,
                Outcome::Stored {
                    durable_after: Some(DurableAt::for_tests(20)),
                },
            ),
        ];
        assert_eq!(
            frames(&round, None),
            vec![
                Frame::Confirm {
                    ranges: vec![(1, 2), (6, 6)]
                },
                Frame::Duplicate {
                    ranges: vec![(5, 5)]
                },
                Frame::Refuse {
                    ranges: vec![(3, 4)],
                    code: 552,
                    reason: "full".into()
                },
            ]
        );
        let disk = BrokerError::new(551, "disk");
        let refused = frames(&round, Some(&disk));
        assert_eq!(
            refused[0],
            Frame::Confirm {
                ranges: vec![(1, 2)]
            }
        );
        assert_eq!(refused.len(), 4);
    }
}
