//! Transactional (half) messages, as RocketMQ users rely on them: a
//! producer of a *producer group* sends a half message — routed and stored
//! now, invisible — runs its local transaction, then commits (the message
//! appears in every destination queue at once: one record) or rolls back
//! (it is discarded). When the producer says nothing, the broker asks a
//! live member of the group (transaction_checks.rs).
//!
//! Routing is decided at send time and kept: the exchange's filter and
//! router run once, while the producer waits, so a commit cannot fail on a
//! plugin or a changed binding, and it makes the message visible in every
//! destination atomically (the store appends one copy naming them all).
//! Queues deleted meanwhile are skipped; TTLs count from the send.
//!
//! The half record carries its group and vhost in headers
//! (`x-transaction-group`, `x-transaction-vhost`): pending transactions and
//! their check counts are rebuilt from the store after a restart.
//! Outcomes are remembered (metadata tree `transaction-outcomes`, for a
//! day) so that commit and rollback are idempotent and a commit after a
//! rollback is refused by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchyard_protocol::{Message, TxOutcome, Value, code};

use super::auth::Principal;
use super::convert::{from_stored, message_to_plugin, to_stored};
use super::error::BrokerError;
use super::publish::DurableAt;
use super::transaction_checks::ProducerGroup;
use super::{Broker, Vhost};
use switchyard_plugin_host::Verdict;

pub const TRANSACTION_GROUP_HEADER: &str = "x-transaction-group";
pub const TRANSACTION_VHOST_HEADER: &str = "x-transaction-vhost";
const OUTCOMES: &str = "transaction-outcomes";
/// How long an outcome is remembered.
const OUTCOME_KEPT_MS: u64 = 24 * 3600 * 1000;

/// A transaction waiting for its producer.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub vhost: String,
    pub group: String,
    pub exchange: String,
    pub routing_key: String,
    pub sent_ms: u64,
    pub checks: u32,
    pub next_check_ms: u64,
}

/// What the broker keeps of transactions in memory.
#[derive(Default)]
pub(crate) struct Transactions {
    pub pending: Mutex<BTreeMap<u64, Pending>>,
    /// (vhost, group) → members, settings, counters.
    pub groups: Mutex<HashMap<(String, String), ProducerGroup>>,
    pub next_member: AtomicU64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutcomeRecord {
    /// `committed`, `rolled back` or `discarded after N unanswered checks`.
    outcome: String,
    at_ms: u64,
}

fn outcome_key(id: u64) -> String {
    format!("{id:020}")
}

fn header_text(message: &Message, name: &str) -> Option<String> {
    message
        .headers
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.value.as_text())
}

impl Broker {
    /// Sends a half message to `exchange` for producer group `group`:
    /// authorized as a publish, filtered and routed now, stored invisible.
    /// Returns its transaction id, and when it is durable enough to answer.
    pub fn send_half(
        &self,
        principal: &Principal,
        group: &str,
        exchange: &str,
        mut message: Message,
    ) -> Result<(u64, Option<DurableAt>), BrokerError> {
        self.authorize_publish(principal, exchange, std::slice::from_ref(&message))
            .map_err(|(_, e)| e)?;
        message
            .headers
            .retain(|f| !super::reserved_headers::is_reserved(&f.name));
        if message
            .headers
            .iter()
            .any(|f| [super::DELAY_HEADER, super::DELIVER_AT_HEADER].contains(&f.name.as_str()))
        {
            return Err(BrokerError::invalid_argument(
                "a transactional message cannot be delayed (x-delay, x-deliver-at)",
            ));
        }
        let vhost = self.vhost(&principal.vhost)?;
        let x = vhost.exchange(exchange)?;
        if let Some(filter) = &x.filter {
            let bodies = [message.body.clone()];
            match filter
                .check_batch(&[message_to_plugin(&message)], &bodies)?
                .pop()
            {
                Some(Verdict::Accept) | None => {}
                Some(Verdict::Duplicate) => {
                    return Err(BrokerError::precondition(format!(
                        "the filter of exchange '{exchange}' says this message was already published"
                    )));
                }
                Some(Verdict::Reject(reason)) => {
                    return Err(BrokerError::new(
                        code::PLUGIN_ERROR,
                        format!(
                            "the filter of exchange '{exchange}' rejected the message: {reason}"
                        ),
                    ));
                }
            }
        }
        let queues = self
            .route(&vhost, &x, std::slice::from_ref(&message))
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))?;
        let ids: Vec<_> = queues.iter().map(|q| q.id).collect();
        message
            .headers
            .retain(|f| f.name != TRANSACTION_GROUP_HEADER && f.name != TRANSACTION_VHOST_HEADER);
        message.headers.push(switchyard_protocol::Field::new(
            TRANSACTION_GROUP_HEADER,
            Value::Text(group.into()),
        ));
        message.headers.push(switchyard_protocol::Field::new(
            TRANSACTION_VHOST_HEADER,
            Value::Text(vhost.name.clone()),
        ));
        let now = self.now_ms();
        let appended = self
            .store
            .append_half(&to_stored(exchange, &message, now), &ids)?;
        let id = appended.offsets[0].1;
        let settings = self.group_settings(&vhost.name, group);
        self.transactions.pending.lock().unwrap().insert(
            id,
            Pending {
                vhost: vhost.name.clone(),
                group: group.into(),
                exchange: exchange.into(),
                routing_key: message.routing_key.clone(),
                sent_ms: now,
                checks: 0,
                next_check_ms: now.saturating_add(settings.check_timeout_ms),
            },
        );
        Ok((id, appended.needs_sync.then_some(DurableAt(appended.end))))
    }

    /// Commits or rolls back transaction `id` (or notes that its producer
    /// does not know yet). Idempotent; ending it the other way is refused.
    /// Returns when a commit's messages are durable enough to answer.
    pub fn end_transaction(
        &self,
        principal: &Principal,
        id: u64,
        outcome: TxOutcome,
    ) -> Result<Option<DurableAt>, BrokerError> {
        let pending = self.transactions.pending.lock().unwrap().get(&id).cloned();
        let Some(pending) = pending.filter(|p| p.vhost == principal.vhost) else {
            return self.ended_before(id, outcome).map(|()| None);
        };
        // Whoever may publish it may end it.
        let probe = Message::new(pending.routing_key.clone(), Bytes::new());
        self.authorize_publish(principal, &pending.exchange, &[probe])
            .map_err(|(_, e)| e)?;
        let ended = match outcome {
            TxOutcome::Unknown => return Ok(None),
            TxOutcome::Commit => self.store.commit_half(id)?.map(|commit| {
                self.arrived(&commit.queues, true);
                commit
                    .appended
                    .filter(|a| a.needs_sync)
                    .map(|a| DurableAt(a.end))
            }),
            TxOutcome::Rollback => self.store.discard_half(id)?.then_some(None),
        };
        let Some(durable) = ended else {
            return self.ended_before(id, outcome).map(|()| None);
        };
        let what = match outcome {
            TxOutcome::Commit => "committed",
            _ => "rolled back",
        };
        self.transaction_ended(id, &pending, what);
        Ok(durable)
    }

    /// Forgets pending transaction `id` and remembers how it ended.
    pub(crate) fn transaction_ended(&self, id: u64, pending: &Pending, outcome: &str) {
        self.transactions.pending.lock().unwrap().remove(&id);
        if let Some(group) = self
            .transactions
            .groups
            .lock()
            .unwrap()
            .get_mut(&(pending.vhost.clone(), pending.group.clone()))
        {
            group.count_outcome(outcome);
        }
        let record = OutcomeRecord {
            outcome: outcome.into(),
            at_ms: self.now_ms(),
        };
        if let Err(e) = self
            .store
            .metadata()
            .put(OUTCOMES, &outcome_key(id), &record)
        {
            tracing::warn!(id, error = %e, "transaction outcome not recorded");
        }
    }

    /// Transaction `id` is not pending: fine if it ended as asked, refused
    /// by name otherwise.
    fn ended_before(&self, id: u64, asked: TxOutcome) -> Result<(), BrokerError> {
        let record: Option<OutcomeRecord> =
            self.store.metadata().get(OUTCOMES, &outcome_key(id))?;
        let asked_name = match asked {
            TxOutcome::Commit => "committed",
            TxOutcome::Rollback => "rolled back",
            TxOutcome::Unknown => "",
        };
        match record {
            Some(record) if record.outcome == asked_name || asked == TxOutcome::Unknown => Ok(()),
            Some(record) => Err(BrokerError::precondition(format!(
                "transaction {id} was {}: it cannot be {asked_name}",
                record.outcome
            ))),
            None => Err(BrokerError::new(
                code::NOT_FOUND,
                format!("no pending transaction {id}"),
            )),
        }
    }

    /// After the store opened: the pending transactions again, with the
    /// checks already made; outcomes older than a day forgotten.
    pub(crate) fn restore_transactions(&self) -> Result<(), BrokerError> {
        let now = self.now_ms();
        let meta = self.store.metadata();
        for (key, record) in meta.scan::<OutcomeRecord>(OUTCOMES, "")? {
            if record.at_ms.saturating_add(OUTCOME_KEPT_MS) < now {
                meta.remove(OUTCOMES, &key)?;
            }
        }
        let mut pending = self.transactions.pending.lock().unwrap();
        for id in self.store.pending_halves()? {
            let half = self.store.half(id)?;
            let Ok((exchange, message)) = from_stored(&half.message) else {
                tracing::error!(id, "pending transaction unreadable: discarded");
                self.store.discard_half(id)?;
                continue;
            };
            let (Some(group), Some(vhost)) = (
                header_text(&message, TRANSACTION_GROUP_HEADER),
                header_text(&message, TRANSACTION_VHOST_HEADER),
            ) else {
                self.store.discard_half(id)?;
                continue;
            };
            let settings = self.group_settings(&vhost, &group);
            let sent_ms = half.message.publish_ms;
            let next_check_ms = sent_ms
                .saturating_add(settings.check_timeout_ms)
                .saturating_add(u64::from(half.checks) * settings.check_interval_ms);
            pending.insert(
                id,
                Pending {
                    vhost,
                    group,
                    exchange,
                    routing_key: message.routing_key,
                    sent_ms,
                    checks: half.checks,
                    next_check_ms,
                },
            );
        }
        Ok(())
    }

    /// The message of pending transaction `id`, as its producer sent it.
    pub(crate) fn half_message(&self, id: u64) -> Result<(String, Message), BrokerError> {
        let half = self.store.half(id)?;
        from_stored(&half.message).map_err(|e| BrokerError::new(code::INTERNAL_ERROR, e))
    }

    /// The vhost of a pending transaction, if it still exists.
    pub(crate) fn pending_vhost(&self, pending: &Pending) -> Option<std::sync::Arc<Vhost>> {
        self.vhost(&pending.vhost).ok()
    }
}
