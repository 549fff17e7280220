//! Messages other cells forwarded here, stored exactly once. Each carries
//! its place in its origin's outbox (`x-switchyard-forward-seq:
//! EPOCH/SEQ`); per origin, epoch and vhost the broker remembers the
//! highest place stored and the places below it that were refused (holes,
//! to be accepted when sent again). A place seen before is confirmed as a
//! duplicate, not stored again. The memory is written to the metadata
//! (and flushed) before the batch is confirmed.
//!
//! Known window: a broker killed after storing a batch and before that
//! flush stores the batch again when its origin resends it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use switchyard_protocol::cells::{FORWARD_SEQ_HEADER, FORWARDED_FROM_HEADER};
use switchyard_protocol::{Message, Value, find};
use switchyard_storage::metadata::key;

use super::super::auth::Principal;
use super::super::error::BrokerError;
use super::super::exchange::Exchange;
use super::super::publish::Outcome;
use super::super::routing::Aftermath;
use super::super::{Broker, Vhost};

const INBOX: &str = "cells-inbox";

#[derive(Default)]
pub(crate) struct Inbox {
    places: Mutex<HashMap<String, Places>>,
}

/// What one origin (cell, epoch) has had stored in one vhost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Places {
    highest: Option<u64>,
    holes: BTreeSet<u64>,
}

impl Places {
    fn seen(&self, seq: u64) -> bool {
        self.highest.is_some_and(|h| seq <= h) && !self.holes.contains(&seq)
    }
}

/// `(origin key, seq)` of a forwarded message.
fn place_of(message: &Message, vhost: &str) -> Option<(String, u64)> {
    let Some(Value::Text(origin)) = find(&message.headers, FORWARDED_FROM_HEADER) else {
        return None;
    };
    let Some(Value::Text(place)) = find(&message.headers, FORWARD_SEQ_HEADER) else {
        return None;
    };
    let (epoch, seq) = place.split_once('/')?;
    Some((key(&[origin, epoch, vhost]), seq.parse().ok()?))
}

impl Broker {
    pub(super) fn inbox_restore(&self) -> Result<(), BrokerError> {
        let mut places = self.cells.inbox.places.lock().unwrap();
        for (key, value) in self.store.metadata().scan::<Places>(INBOX, "")? {
            places.insert(key, value);
        }
        Ok(())
    }

    /// Whether `principal` publishes messages another cell forwarded:
    /// only brokers of other cells (users tagged `cell-peer`, or
    /// administrators) may claim so; anyone else's claim is ignored.
    pub(crate) fn is_forwarded(principal: &Principal, messages: &[Message]) -> bool {
        (principal.administrator || principal.cell_peer)
            && messages
                .first()
                .is_some_and(|m| find(&m.headers, FORWARDED_FROM_HEADER).is_some())
    }

    /// Stores forwarded messages here (never forwarded again), each place
    /// at most once.
    pub(crate) fn publish_forwarded(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        messages: &[Message],
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        let mut inbox = self.cells.inbox.places.lock().unwrap();
        let places: Vec<Option<(String, u64)>> =
            messages.iter().map(|m| place_of(m, &vhost.name)).collect();
        let fresh: Vec<usize> = (0..messages.len())
            .filter(|&i| match &places[i] {
                Some((origin, seq)) => !inbox.get(origin).is_some_and(|p| p.seen(*seq)),
                None => true,
            })
            .collect();
        let batch: Vec<Message> = fresh.iter().map(|&i| messages[i].clone()).collect();
        let stored = self.filter_route_and_store(vhost, exchange, &batch, aftermath);
        let mut outcomes = vec![Outcome::Duplicate; messages.len()];
        let mut changed: HashMap<&str, Places> = HashMap::new();
        for (&i, outcome) in fresh.iter().zip(stored) {
            if let Some((origin, seq)) = &places[i] {
                let places = changed
                    .entry(origin)
                    .or_insert_with(|| inbox.get(origin).cloned().unwrap_or_default());
                match outcome {
                    Outcome::Refused(_) => {
                        if places.highest.is_some_and(|h| *seq < h) {
                            places.holes.insert(*seq);
                        }
                    }
                    _ => {
                        places.holes.remove(seq);
                        if places.highest.is_none_or(|h| *seq > h) {
                            places.highest = Some(*seq);
                        }
                    }
                }
            }
            outcomes[i] = outcome;
        }
        // A refused place below a later stored one in this batch is a hole.
        for &i in &fresh {
            if let (Some((origin, seq)), Outcome::Refused(_)) = (&places[i], &outcomes[i])
                && let Some(places) = changed.get_mut(origin.as_str())
                && places.highest.is_some_and(|h| *seq < h)
            {
                places.holes.insert(*seq);
            }
        }
        if !changed.is_empty() {
            let meta = self.store.metadata();
            let written = changed
                .iter()
                .try_for_each(|(origin, places)| meta.put(INBOX, origin, places))
                .and_then(|()| meta.flush());
            if let Err(e) = written {
                // Not remembered: refuse the batch rather than confirm
                // what may be stored again.
                let e = BrokerError::from(e);
                return vec![Outcome::Refused(e); messages.len()];
            }
            for (origin, places) in changed {
                inbox.insert(origin.to_string(), places);
            }
        }
        outcomes
    }
}
