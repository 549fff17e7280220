//! Messages other cells forwarded here (and federated ones), stored
//! exactly once. Each carries its place in its origin's stream to this
//! cell (`x-switchyard-forward-seq: EPOCH/SEQ`); per origin, epoch and
//! vhost the broker remembers which places it stored (ranges). A place
//! seen before is confirmed as a duplicate, not stored again; a refused
//! one is not remembered, so it is stored when sent again.
//!
//! The memory is written to the metadata (and flushed) before a batch is
//! confirmed, with a mark: the log position before which every stored
//! forwarded record is remembered. A broker killed between storing a batch
//! and that flush finds the batch's records at start by reading the log
//! from the mark, so a resent batch is still a duplicate.

use std::collections::HashMap;
use std::sync::Mutex;

use rangemap::RangeInclusiveSet;
use switchyard_protocol::cells::{FORWARD_SEQ_HEADER, FORWARDED_FROM_HEADER};
use switchyard_protocol::{Message, Value, find};
use switchyard_storage::metadata::key;

use super::super::auth::Principal;
use super::super::convert::from_stored;
use super::super::error::BrokerError;
use super::super::exchange::Exchange;
use super::super::publish::Outcome;
use super::super::routing::Aftermath;
use super::super::{Broker, Vhost};
use super::CELLS;

const INBOX: &str = "cells-inbox";
/// Key (tree `cells`) of the log position the inbox is complete up to.
const MARK: &str = "inbox-mark";

/// origin key → the places stored.
type Places = RangeInclusiveSet<u64>;

#[derive(Default)]
pub(crate) struct Inbox {
    places: Mutex<HashMap<String, Places>>,
}

/// `(origin key, seq)` of a forwarded message in `vhost`.
fn place_of(message: &Message, vhost: &str) -> Option<(String, u64)> {
    let Some(Value::Text(origin)) = find(&message.headers, FORWARDED_FROM_HEADER) else {
        return None;
    };
    let Some(Value::Text(place)) = find(&message.headers, FORWARD_SEQ_HEADER) else {
        return None;
    };
    let (epoch, seq) = place.rsplit_once('/')?;
    Some((key(&[origin, epoch, vhost]), seq.parse().ok()?))
}

impl Broker {
    /// At start: the remembered places, and those of forwarded records
    /// the log holds past the mark (stored, not yet remembered).
    pub(super) fn inbox_restore(&self) -> Result<(), BrokerError> {
        let meta = self.store.metadata();
        let mut places = self.cells.inbox.places.lock().unwrap();
        for (origin, stored) in meta.scan::<Places>(INBOX, "")? {
            places.insert(origin, stored);
        }
        let mark: u64 = meta.get(CELLS, MARK)?.unwrap_or(0);
        let mut found = 0;
        self.store.scan_records(mark, |record, queues| {
            let Some(vhost) = queues
                .iter()
                .find(|q| !q.starts_with('\u{0}'))
                .and_then(|q| q.split_once('\u{1f}'))
                .map(|(vhost, _)| vhost)
            else {
                return;
            };
            let Ok((_, message)) = from_stored(record) else {
                return;
            };
            if let Some((origin, seq)) = place_of(&message, vhost) {
                places.entry(origin).or_default().insert(seq..=seq);
                found += 1;
            }
        });
        if found > 0 {
            tracing::info!(
                found,
                "forwarded messages stored before the last crash remembered"
            );
            for (origin, stored) in places.iter() {
                meta.put(INBOX, origin, stored)?;
            }
        }
        meta.put(CELLS, MARK, &self.store.log_end())?;
        meta.flush()?;
        Ok(())
    }

    /// Moves the mark to the end of the log (nothing forwarded is being
    /// stored meanwhile): the next start reads less. Called now and then.
    pub fn inbox_checkpoint(&self) -> Result<(), BrokerError> {
        let _inbox = self.cells.inbox.places.lock().unwrap();
        self.store
            .metadata()
            .put(CELLS, MARK, &self.store.log_end())?;
        Ok(())
    }

    /// Whether `principal` publishes messages another cell forwarded:
    /// only brokers of other cells (users tagged `cell-peer`, or
    /// administrators) may claim so; anyone else's claim is ignored (and
    /// its reserved headers removed: `reserved_headers.rs`).
    pub(crate) fn is_forwarded(principal: &Principal, messages: &[Message]) -> bool {
        (principal.administrator || principal.cell_peer.is_some())
            && messages
                .first()
                .is_some_and(|m| find(&m.headers, FORWARDED_FROM_HEADER).is_some())
    }

    /// How many leading messages of a forwarded batch `principal` may
    /// forward, and why not the next: a cell peer forwards only for the
    /// cell it is bound to (so one cell cannot fill another's places in
    /// the duplicate filter); administrators for any.
    pub(crate) fn authorize_forwarded(
        principal: &Principal,
        messages: &[Message],
    ) -> Result<(), (usize, BrokerError)> {
        let Some(cell) = principal
            .cell_peer
            .as_deref()
            .filter(|_| !principal.administrator)
        else {
            return Ok(());
        };
        for (i, message) in messages.iter().enumerate() {
            let origin = match find(&message.headers, FORWARDED_FROM_HEADER) {
                Some(Value::Text(origin)) => origin.as_str(),
                _ => "",
            };
            if origin != cell {
                return Err((
                    i,
                    BrokerError::access_refused(format!(
                        "user '{}' speaks for cell '{cell}' (tag cell-peer:{cell}); it may not \
                         forward a message from cell '{origin}'",
                        principal.user
                    )),
                ));
            }
        }
        Ok(())
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
                Some((origin, seq)) => !inbox.get(origin).is_some_and(|p| p.contains(seq)),
                None => true,
            })
            .collect();
        let batch: Vec<Message> = fresh.iter().map(|&i| messages[i].clone()).collect();
        let stored = self.filter_route_and_store(vhost, exchange, &batch, aftermath);
        let mut outcomes = vec![Outcome::Duplicate; messages.len()];
        let mut changed: HashMap<&str, Places> = HashMap::new();
        for (&i, outcome) in fresh.iter().zip(stored) {
            if let Some((origin, seq)) = &places[i]
                && !matches!(outcome, Outcome::Refused(_))
            {
                changed
                    .entry(origin)
                    .or_insert_with(|| inbox.get(origin).cloned().unwrap_or_default())
                    .insert(*seq..=*seq);
            }
            outcomes[i] = outcome;
        }
        if !changed.is_empty() {
            let meta = self.store.metadata();
            let written = changed
                .iter()
                .try_for_each(|(origin, places)| meta.put(INBOX, origin, places))
                .and_then(|()| meta.put(CELLS, MARK, &self.store.log_end()))
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
