//! A channel's topology requests: declaring and deleting exchanges and
//! queues, binding, purging, listing. The core decides; this translates.

use switchyard_core::{BindingSpec, BrokerError, ExchangeSpec, QueueSpec};
use switchyard_protocol::{Frame, Query};

use super::{ChannelSession, Failure, unexpected};

impl ChannelSession {
    /// Declare, delete, bind, unbind, purge, query.
    pub(super) async fn topology(&mut self, frame: Frame) -> Result<(), Failure> {
        let p = self.principal.clone();
        let broker = self.broker.clone();
        let unbind = matches!(frame, Frame::Unbind { .. });
        match frame {
            Frame::DeclareExchange {
                req,
                name,
                kind,
                durable,
                auto_delete,
                passive,
                arguments,
            } => {
                broker.declare_exchange(
                    &p,
                    ExchangeSpec {
                        name: &name,
                        kind: &kind,
                        durable,
                        auto_delete,
                        passive,
                        arguments,
                    },
                )?;
                self.ok(req, name, 0, 0).await;
            }
            Frame::DeleteExchange {
                req,
                name,
                if_unused,
            } => {
                broker.delete_exchange(&p, &name, if_unused)?;
                self.ok(req, name, 0, 0).await;
            }
            Frame::DeclareQueue {
                req,
                name,
                durable,
                exclusive,
                auto_delete,
                passive,
                arguments,
            } => {
                let (name, messages, consumers) = broker.declare_queue(
                    &p,
                    self.connection.id,
                    QueueSpec {
                        name: &name,
                        durable,
                        exclusive,
                        auto_delete,
                        passive,
                        arguments,
                    },
                )?;
                self.ok(req, name, messages, consumers).await;
            }
            Frame::DeleteQueue {
                req,
                name,
                if_unused,
                if_empty,
            } => {
                let messages =
                    broker.delete_queue(&p, self.connection.id, &name, if_unused, if_empty)?;
                self.ok(req, name, messages, 0).await;
            }
            Frame::ResetGroup {
                req,
                queue,
                group,
                member,
                offset,
            } => {
                let member = (!member.is_empty()).then_some(member.as_str());
                let position = broker.reset_group(&p, &queue, &group, member, offset)?;
                self.ok(req, group, position, 0).await;
            }
            Frame::PurgeQueue { req, name } => {
                let messages = broker.purge_queue(&p, self.connection.id, &name)?;
                self.ok(req, name, messages, 0).await;
            }
            Frame::Bind {
                req,
                queue,
                exchange,
                key,
                arguments,
            }
            | Frame::Unbind {
                req,
                queue,
                exchange,
                key,
                arguments,
            } => {
                let spec = BindingSpec {
                    queue: &queue,
                    exchange: &exchange,
                    key: &key,
                    arguments: &arguments,
                };
                if unbind {
                    broker.unbind(&p, self.connection.id, &spec)?;
                } else {
                    broker.bind(&p, self.connection.id, &spec)?;
                }
                self.ok(req, queue, 0, 0).await;
            }
            Frame::Query { req, what } => {
                let what = Query::from_code(what).ok_or_else(|| {
                    BrokerError::invalid_argument(format!("unknown query {what}"))
                })?;
                let rows = broker.list(&p, what)?;
                self.reply(Frame::QueryReply { req, rows }).await;
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}
