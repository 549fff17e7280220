//! Transactional (half) messages: join a producer group, send a half
//! message (stored by the broker, invisible), run the local transaction,
//! then commit or roll back. When a producer goes silent, the broker asks
//! a live member of its group — any connection that joined it — what
//! became of the transaction: the checks arrive on the receiver
//! [`Channel::join_producer_group`] returns, and each is answered with
//! [`CheckRequest::answer`].

use std::time::Duration;

use switchyard_protocol::{Field, Frame, Message, TxOutcome, Value};
use tokio::sync::mpsc;

use crate::channel::Channel;
use crate::error::Error;

/// Checks buffered on the client before the channel's reader waits.
const CHECKS_BUFFERED: usize = 256;

/// A producer group's check-back settings (the broker's defaults, as
/// RocketMQ's, when `None`).
#[derive(Debug, Clone, Default)]
pub struct ProducerGroupOptions {
    /// The first check of a transaction left pending (default 6 s).
    pub check_timeout: Option<Duration>,
    /// Between checks (default 60 s).
    pub check_interval: Option<Duration>,
    /// Checks before the broker gives up (default 15).
    pub max_checks: Option<u32>,
    /// Where a transaction nobody answered for goes: `None` discards it.
    pub give_up_queue: Option<String>,
}

impl ProducerGroupOptions {
    fn arguments(&self) -> Vec<Field> {
        let ms = |d: Duration| Value::Int(d.as_millis().min(i64::MAX as u128) as i64);
        let mut arguments = Vec::new();
        if let Some(d) = self.check_timeout {
            arguments.push(Field::new("check-timeout", ms(d)));
        }
        if let Some(d) = self.check_interval {
            arguments.push(Field::new("check-interval", ms(d)));
        }
        if let Some(n) = self.max_checks {
            arguments.push(Field::new("max-checks", Value::Int(i64::from(n))));
        }
        if let Some(queue) = &self.give_up_queue {
            arguments.push(Field::new("give-up", Value::Text(queue.clone())));
        }
        arguments
    }
}

/// The broker asks what became of transaction `id`.
#[derive(Debug)]
pub struct CheckRequest {
    pub id: u64,
    pub group: String,
    pub exchange: String,
    /// The half message as it was sent.
    pub message: Message,
    channel: Channel,
}

impl CheckRequest {
    /// Tells the broker: commit, roll back, or not known yet.
    pub async fn answer(self, outcome: TxOutcome) -> Result<(), Error> {
        self.channel.end_transaction(self.id, outcome).await
    }
}

impl Channel {
    /// Joins producer group `group` on this channel (needed before
    /// [`Channel::send_half`]); the broker's checks for the group arrive on
    /// the receiver. Joining again replaces the earlier membership.
    pub async fn join_producer_group(
        &self,
        group: &str,
        options: ProducerGroupOptions,
    ) -> Result<mpsc::Receiver<CheckRequest>, Error> {
        let (tx, rx) = mpsc::channel(CHECKS_BUFFERED);
        self.route_checks(tx);
        self.request_ok(|req| Frame::TxSelect {
            req,
            group: group.into(),
            arguments: options.arguments(),
        })
        .await?;
        Ok(rx)
    }

    /// Sends a half message: routed and stored by the broker, invisible
    /// until committed. Returns its transaction id.
    pub async fn send_half(&self, exchange: &str, message: Message) -> Result<u64, Error> {
        let info = self
            .request_ok(|req| Frame::TxPublish {
                req,
                exchange: exchange.into(),
                message,
            })
            .await?;
        Ok(info.messages)
    }

    /// Makes transaction `id`'s message visible in every queue it was
    /// routed to, at once. Committing twice is fine; after a rollback it is
    /// refused.
    pub async fn commit(&self, id: u64) -> Result<(), Error> {
        self.end_transaction(id, TxOutcome::Commit).await
    }

    /// Discards transaction `id`'s message.
    pub async fn rollback(&self, id: u64) -> Result<(), Error> {
        self.end_transaction(id, TxOutcome::Rollback).await
    }

    async fn end_transaction(&self, id: u64, outcome: TxOutcome) -> Result<(), Error> {
        self.request_ok(|req| Frame::TxEnd { req, id, outcome })
            .await
            .map(drop)
    }

    /// A `TxCheck` from the broker: to the group's receiver, if anyone
    /// holds it and it has room — else unanswered: the broker asks again
    /// (the reader never waits on it: answers to this channel's requests
    /// must still be read).
    pub(crate) fn checked(&self, id: u64, group: String, exchange: String, message: Message) {
        let checks = self.check_route();
        if let Some(checks) = checks {
            let request = CheckRequest {
                id,
                group,
                exchange,
                message,
                channel: self.clone(),
            };
            let _ = checks.try_send(request);
        }
    }
}
