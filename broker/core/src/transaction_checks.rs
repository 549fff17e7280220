//! Producer groups and check-back: the channels that joined a producer
//! group, its settings, and the checker thread that asks a live member
//! about a transaction its producer left pending — first after
//! `check-timeout` (6 s by default), then every `check-interval` (60 s),
//! at most `max-checks` times (15); after that the half message is
//! discarded, or parked in the group's `give-up` queue. A check goes to
//! one member, in turn, that may publish to the message's exchange: any
//! connection of the group, not only the sender's. Checks are counted in
//! the store (durable), so they resume where they were after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_protocol::{Field, Message, Value};
use switchyard_storage::metadata::key;
use tokio::sync::mpsc;

use super::Broker;
use super::auth::{Access, Principal};
use super::error::BrokerError;
use super::transactions::Pending;

/// How often the checker looks for transactions to ask about.
const CHECK_SWEEP: Duration = Duration::from_millis(100);
const GROUP_SETTINGS: &str = "producer-groups";

/// A producer group's check-back settings (the latest member's word,
/// kept in the metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    pub check_timeout_ms: u64,
    pub check_interval_ms: u64,
    pub max_checks: u32,
    /// Where a transaction nobody answered for goes: `None` discards it.
    pub give_up_queue: Option<String>,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            check_timeout_ms: 6_000,
            check_interval_ms: 60_000,
            max_checks: 15,
            give_up_queue: None,
        }
    }
}

impl GroupSettings {
    /// `TxSelect` arguments over `base` (the group's settings so far):
    /// each argument given replaces its setting, the others stay. Unknown
    /// arguments are refused by name.
    pub fn parse(arguments: &[Field], base: GroupSettings) -> Result<Self, BrokerError> {
        let mut settings = base;
        for field in arguments {
            let number = || {
                match &field.value {
                    Value::Int(n) if *n > 0 => Ok(*n as u64),
                    Value::Text(t) => t.parse::<u64>().ok().filter(|n| *n > 0).ok_or(()),
                    _ => Err(()),
                }
                .map_err(|()| {
                    BrokerError::invalid_argument(format!(
                        "producer group argument '{}' must be a positive integer",
                        field.name
                    ))
                })
            };
            match field.name.as_str() {
                "check-timeout" => settings.check_timeout_ms = number()?,
                "check-interval" => settings.check_interval_ms = number()?,
                "max-checks" => settings.max_checks = number()?.min(u64::from(u32::MAX)) as u32,
                "give-up" => {
                    settings.give_up_queue = match field.value.as_text().as_deref() {
                        Some("discard") => None,
                        Some(queue) if !queue.is_empty() => Some(queue.to_string()),
                        _ => {
                            return Err(BrokerError::invalid_argument(
                                "producer group argument 'give-up' must be 'discard' or a queue name",
                            ));
                        }
                    }
                }
                other => {
                    return Err(BrokerError::invalid_argument(format!(
                        "unknown producer group argument '{other}' (known: check-timeout, \
                         check-interval, max-checks, give-up)"
                    )));
                }
            }
        }
        Ok(settings)
    }
}

/// A producer group's figures (listings and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerGroupMetrics {
    pub vhost: String,
    pub group: String,
    /// Channels in the group now.
    pub members: u64,
    pub pending: u64,
    pub oldest_age_ms: u64,
    /// Since the broker started.
    pub checks_sent: u64,
    pub committed: u64,
    pub rolled_back: u64,
    /// Discarded or parked after their checks.
    pub given_up: u64,
}

/// A check request for a member of a producer group.
#[derive(Debug, Clone)]
pub struct TransactionCheck {
    pub id: u64,
    pub group: String,
    pub exchange: String,
    pub message: Message,
}

struct Member {
    id: u64,
    principal: Arc<Principal>,
    checks: mpsc::Sender<TransactionCheck>,
}

/// One producer group of a vhost.
#[derive(Default)]
pub(crate) struct ProducerGroup {
    members: Vec<Member>,
    /// Whose turn the next check is.
    turn: usize,
    pub checks_sent: u64,
    pub committed: u64,
    pub rolled_back: u64,
    pub given_up: u64,
}

impl ProducerGroup {
    pub(crate) fn count_outcome(&mut self, outcome: &str) {
        match outcome {
            "committed" => self.committed += 1,
            "rolled back" => self.rolled_back += 1,
            _ => self.given_up += 1,
        }
    }

    /// Hands `check` to the next member that may see it; whether one took it.
    fn ask(&mut self, check: TransactionCheck, may_see: impl Fn(&Principal) -> bool) -> bool {
        self.members.retain(|m| !m.checks.is_closed());
        for _ in 0..self.members.len() {
            self.turn = (self.turn + 1) % self.members.len();
            let member = &self.members[self.turn];
            if may_see(&member.principal) && member.checks.try_send(check.clone()).is_ok() {
                return true;
            }
        }
        false
    }
}

impl Broker {
    /// `principal`'s channel joins producer group `group` of its vhost:
    /// checks for the group may come to `checks`. Returns its membership
    /// id (for [`Broker::leave_producer_group`]).
    ///
    /// Joining needs *write* permission on the group's name (a group is a
    /// tenant's resource like a queue: another tenant can neither join it
    /// nor receive its checks). `arguments` (check-timeout, check-interval,
    /// max-checks, give-up) change the group's settings only when given,
    /// and only with *configure* permission on the group's name; a give-up
    /// queue needs write permission on that queue (and configure if it
    /// does not exist yet: giving up creates it). A member that joins
    /// without arguments keeps the group's settings as they are.
    pub fn join_producer_group(
        &self,
        principal: Arc<Principal>,
        group: &str,
        arguments: &[Field],
        checks: mpsc::Sender<TransactionCheck>,
    ) -> Result<u64, BrokerError> {
        super::topology::check_name("producer group", group)?;
        principal.check(Access::Write, "producer group", group)?;
        if !arguments.is_empty() {
            self.change_group_settings(&principal, group, arguments)?;
        }
        let id = (self.transactions.next_member).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut groups = self.transactions.groups.lock().unwrap();
        let entry = groups
            .entry((principal.vhost.clone(), group.to_string()))
            .or_default();
        entry.members.push(Member {
            id,
            principal,
            checks,
        });
        Ok(id)
    }

    /// The explicit, permission-checked change of a group's settings.
    fn change_group_settings(
        &self,
        principal: &Principal,
        group: &str,
        arguments: &[Field],
    ) -> Result<(), BrokerError> {
        let current = self.group_settings(&principal.vhost, group);
        let settings = GroupSettings::parse(arguments, current.clone())?;
        if settings == current {
            return Ok(());
        }
        principal.check(Access::Configure, "producer group", group)?;
        if let Some(queue) = &settings.give_up_queue {
            let vhost = self.vhost(&principal.vhost)?;
            self.authorize_keep_in(principal, &vhost, queue)
                .map_err(|e| e.context("producer group argument 'give-up'"))?;
        }
        self.persist(GROUP_SETTINGS, &key(&[&principal.vhost, group]), &settings)
    }

    /// Membership `id` of `group` ends (its channel closed).
    pub fn leave_producer_group(&self, vhost: &str, group: &str, id: u64) {
        let mut groups = self.transactions.groups.lock().unwrap();
        if let Some(entry) = groups.get_mut(&(vhost.to_string(), group.to_string())) {
            entry.members.retain(|m| m.id != id);
        }
    }

    /// A group's settings: recorded, or the defaults.
    pub(crate) fn group_settings(&self, vhost: &str, group: &str) -> GroupSettings {
        self.store
            .metadata()
            .get(GROUP_SETTINGS, &key(&[vhost, group]))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Asks about every transaction whose check is due; gives up those
    /// asked `max-checks` times. Returns how many checks went out.
    pub fn check_transactions(&self) -> u64 {
        let now = self.now_ms();
        let due: Vec<(u64, Pending)> = (self.transactions.pending.lock().unwrap().iter())
            .filter(|(_, p)| p.next_check_ms <= now)
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        let mut sent = 0;
        for (id, pending) in due {
            let settings = self.group_settings(&pending.vhost, &pending.group);
            if pending.checks >= settings.max_checks {
                self.give_up(id, &pending, &settings);
                continue;
            }
            match self.check_once(id, &pending) {
                Ok(checks) => {
                    sent += 1;
                    if let Some(p) = self.transactions.pending.lock().unwrap().get_mut(&id) {
                        p.checks = checks;
                        p.next_check_ms = now.saturating_add(settings.check_interval_ms);
                    }
                }
                Err(e) => tracing::warn!(id, error = %e, "transaction check failed"),
            }
        }
        sent
    }

    /// Sends one check (to a member, if one is there) and counts it.
    fn check_once(&self, id: u64, pending: &Pending) -> Result<u32, BrokerError> {
        let (exchange, message) = self.half_message(id)?;
        let check = TransactionCheck {
            id,
            group: pending.group.clone(),
            exchange: exchange.clone(),
            message: message.clone(),
        };
        let may_see = |principal: &Principal| {
            self.authorize_publish(principal, &exchange, std::slice::from_ref(&message))
                .is_ok()
        };
        if let Some(group) = (self.transactions.groups.lock().unwrap())
            .get_mut(&(pending.vhost.clone(), pending.group.clone()))
        {
            group.ask(check, may_see);
            group.checks_sent += 1;
        }
        Ok(self.store.count_half_check(id)?)
    }

    /// Nobody answered `max-checks` times: discarded, or parked.
    fn give_up(&self, id: u64, pending: &Pending, settings: &GroupSettings) {
        let parked = settings.give_up_queue.as_ref().map(|queue| {
            let (_, message) = self.half_message(id)?;
            let vhost = self
                .pending_vhost(pending)
                .ok_or_else(|| BrokerError::not_found("vhost", &pending.vhost, ""))?;
            self.keep_in(&vhost, queue, message)
        });
        if let Some(Err(e)) = &parked {
            // Kept pending: asked about again, parked again later.
            tracing::warn!(id, error = %e, "transaction not parked");
            return;
        }
        match self.store.discard_half(id) {
            Ok(true) => {
                let what = match &settings.give_up_queue {
                    Some(queue) => format!(
                        "parked in '{queue}' after {} unanswered checks",
                        settings.max_checks
                    ),
                    None => format!("discarded after {} unanswered checks", settings.max_checks),
                };
                tracing::warn!(id, group = %pending.group, "transaction {what}");
                self.transaction_ended(id, pending, &what);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(id, error = %e, "ending a transaction"),
        }
    }

    /// Every producer group of `vhost` (all vhosts with `None`), with its
    /// pending transactions and outcome counters.
    pub(crate) fn producer_groups(&self, vhost: Option<&str>) -> Vec<ProducerGroupMetrics> {
        let now = self.now_ms();
        let wanted = |v: &str| vhost.is_none_or(|wanted| wanted == v);
        let mut by_group: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for p in self.transactions.pending.lock().unwrap().values() {
            if wanted(&p.vhost) {
                let entry = by_group
                    .entry((p.vhost.clone(), p.group.clone()))
                    .or_insert((0, u64::MAX));
                entry.0 += 1;
                entry.1 = entry.1.min(p.sent_ms);
            }
        }
        let groups = self.transactions.groups.lock().unwrap();
        for key in groups.keys().filter(|(v, _)| wanted(v)) {
            by_group.entry(key.clone()).or_insert((0, u64::MAX));
        }
        by_group
            .into_iter()
            .map(|(key, (pending, oldest))| {
                let counters = groups.get(&key);
                let count = |f: fn(&ProducerGroup) -> u64| counters.map_or(0, f);
                ProducerGroupMetrics {
                    members: count(|g| g.members.len() as u64),
                    pending,
                    oldest_age_ms: if pending == 0 {
                        0
                    } else {
                        now.saturating_sub(oldest)
                    },
                    checks_sent: count(|g| g.checks_sent),
                    committed: count(|g| g.committed),
                    rolled_back: count(|g| g.rolled_back),
                    given_up: count(|g| g.given_up),
                    vhost: key.0,
                    group: key.1,
                }
            })
            .collect()
    }

    /// `list transactions`: a row per producer group of the vhost.
    pub(crate) fn transaction_rows(&self, vhost: &str) -> Vec<Vec<Field>> {
        let int = |name: &str, n: u64| Field::new(name, Value::Int(n.min(i64::MAX as u64) as i64));
        self.producer_groups(Some(vhost))
            .into_iter()
            .map(|g| {
                vec![
                    Field::new("group", Value::Text(g.group)),
                    int("members", g.members),
                    int("pending", g.pending),
                    int("oldest_age_ms", g.oldest_age_ms),
                    int("checks_sent", g.checks_sent),
                    int("committed", g.committed),
                    int("rolled_back", g.rolled_back),
                    int("given_up", g.given_up),
                ]
            })
            .collect()
    }

    /// Starts the checker thread; it ends when the broker is dropped.
    pub fn start_transaction_checker(self: &Arc<Self>) -> std::io::Result<()> {
        let broker: Weak<Broker> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("transaction-checker".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(CHECK_SWEEP);
                    let Some(broker) = broker.upgrade() else {
                        return;
                    };
                    broker.check_transactions();
                }
            })
            .map(|_| ())
    }
}
