//! The transactional side of a channel: joining a producer group (checks
//! for the group come to this channel as `TxCheck` frames), half messages,
//! and ending transactions. Answers wait for durability off the async
//! threads, in a task of their own, so the channel goes on meanwhile.

use switchyard_protocol::Frame;
use tokio::sync::mpsc;

use super::{ChannelSession, Failure, unexpected};
use switchyard_core::{BrokerError, DurableAt};

/// Checks buffered for a member before it counts as not answering.
const CHECKS_BUFFERED: usize = 256;

/// This channel's membership of a producer group.
pub(super) struct Membership {
    pub group: String,
    pub id: u64,
    pub forwarder: tokio::task::JoinHandle<()>,
}

impl ChannelSession {
    pub(super) async fn transactions(&mut self, frame: Frame) -> Result<(), Failure> {
        match frame {
            Frame::TxSelect {
                req,
                group,
                arguments,
            } => {
                self.leave_producer_group();
                let (checks, mut rx) = mpsc::channel(CHECKS_BUFFERED);
                let id = self.broker.join_producer_group(
                    self.principal.clone(),
                    &group,
                    &arguments,
                    checks,
                )?;
                let out = self.out.clone();
                let forwarder = tokio::spawn(async move {
                    while let Some(check) = rx.recv().await {
                        let frame = Frame::TxCheck {
                            id: check.id,
                            group: check.group,
                            exchange: check.exchange,
                            message: check.message,
                        };
                        if out.send(frame).await.is_err() {
                            return;
                        }
                    }
                });
                self.producer = Some(Membership {
                    group: group.clone(),
                    id,
                    forwarder,
                });
                self.ok(req, group, 0, 0).await;
            }
            Frame::TxPublish {
                req,
                exchange,
                message,
            } => {
                let Some(membership) = &self.producer else {
                    return Err(BrokerError::precondition(
                        "join a producer group (TxSelect) before sending half messages",
                    )
                    .into());
                };
                let (id, durable) = self.broker.send_half(
                    &self.principal,
                    &membership.group,
                    &exchange,
                    message,
                )?;
                self.answer_when_durable(req, id, durable);
            }
            Frame::TxEnd { req, id, outcome } => {
                let durable = self.broker.end_transaction(&self.principal, id, outcome)?;
                self.answer_when_durable(req, id, durable);
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    /// Answers `req` with `Ok` (`messages` = the transaction id) once
    /// `durable` is on disk, or an error if flushing failed.
    fn answer_when_durable(&self, req: u32, id: u64, durable: Option<DurableAt>) {
        let (broker, out) = (self.broker.clone(), self.out.clone());
        tokio::spawn(async move {
            let flushed = match durable {
                None => Ok(()),
                Some(point) => broker.durable(point).await,
            };
            let frame = match flushed {
                Ok(()) => Frame::Ok {
                    req,
                    name: String::new(),
                    messages: id,
                    consumers: 0,
                },
                Err(e) => Frame::Error {
                    req,
                    code: e.code,
                    message: e.message,
                },
            };
            let _ = out.send(frame).await;
        });
    }

    /// Leaves the producer group this channel joined, if any.
    pub(super) fn leave_producer_group(&mut self) {
        if let Some(membership) = self.producer.take() {
            membership.forwarder.abort();
            self.broker.leave_producer_group(
                &self.principal.vhost,
                &membership.group,
                membership.id,
            );
        }
    }
}
