//! The consuming side of a channel: starting and cancelling consumers,
//! `get`, and settling deliveries (ack, nack, reject).

use std::sync::Arc;
use std::time::Duration;

use switchyard_protocol::{Frame, code};
use tokio::sync::{Semaphore, watch};

use super::{ChannelSession, Close, ConsumerHandle, Failure, unexpected};
use crate::consumer::{ConsumerTask, Unacked};
use switchyard_core::{AckMode, BrokerError, ConsumerSpec, Got, Settle, Subscription};

/// The longest a `GetWait` waits (5 minutes).
const MAX_GET_WAIT_MS: u64 = 300_000;

/// A `Consume` or `ConsumeStream` frame's request.
struct ConsumeRequest {
    req: u32,
    queue: String,
    tag: String,
    prefetch: u32,
    auto_ack: bool,
    exclusive: bool,
    subscription: Option<Subscription>,
}

impl ChannelSession {
    /// Starts a consumer; the reply goes out before its first delivery.
    async fn consume(&mut self, request: ConsumeRequest) -> Result<(), BrokerError> {
        let ConsumeRequest {
            req,
            queue,
            tag,
            prefetch,
            auto_ack,
            exclusive,
            subscription,
        } = request;
        let tag = if tag.is_empty() {
            self.next_consumer += 1;
            format!("sy.ctag-{}-{}", self.connection.id, self.next_consumer)
        } else {
            tag
        };
        if self.consumers.contains_key(&tag) {
            return Err(BrokerError::new(
                code::NOT_ALLOWED,
                format!("consumer tag '{tag}' is already in use on this channel"),
            ));
        }
        let spec = ConsumerSpec {
            queue: &queue,
            tag: &tag,
            exclusive,
            subscription: subscription.as_ref(),
        };
        let q = self.broker.start_consumer(
            &self.principal,
            self.connection.id,
            spec,
            self.consumers.len(),
        )?;
        let (stop, stop_rx) = watch::channel(false);
        let task = ConsumerTask {
            broker: self.broker.clone(),
            vhost: self.vhost.clone(),
            queue: q.clone(),
            tag: tag.clone(),
            auto_ack,
            batched: self.batched_deliveries,
            credit: (prefetch > 0 && !auto_ack)
                .then(|| Arc::new(Semaphore::new(prefetch as usize))),
            deliveries: self.deliveries.clone(),
            out: self.out.clone(),
            stop: stop_rx,
        };
        self.ok(req, tag.clone(), 0, 0).await;
        let handle = tokio::spawn(task.run());
        self.consumers.insert(
            tag,
            ConsumerHandle {
                queue: q,
                stop,
                task: handle,
            },
        );
        Ok(())
    }

    pub(super) async fn cancel(&mut self, tag: &str) -> Result<(), BrokerError> {
        let handle = self.consumers.remove(tag).ok_or_else(|| {
            BrokerError::new(
                code::NOT_FOUND,
                format!("no consumer '{tag}' on this channel"),
            )
        })?;
        self.stop_consumer(tag, handle).await;
        Ok(())
    }

    pub(super) async fn stop_consumer(&self, tag: &str, mut handle: ConsumerHandle) {
        handle.halt().await;
        self.broker.end_consumer(&self.vhost, &handle.queue, tag);
    }

    pub(super) fn get(
        &mut self,
        req: u32,
        queue: &str,
        auto_ack: bool,
    ) -> Result<Frame, BrokerError> {
        let ack = AckMode::from_auto_ack(auto_ack);
        let taken = self
            .broker
            .get(&self.principal, self.connection.id, queue, ack)?;
        let Some(Got {
            queue,
            delivery,
            remaining,
        }) = taken
        else {
            return Ok(Frame::GetEmpty { req });
        };
        let delivery_tag =
            self.deliveries
                .lock()
                .unwrap()
                .register((ack == AckMode::Manual).then_some(Unacked {
                    queue,
                    offset: delivery.offset,
                    credit: None,
                }));
        Ok(Frame::GetOk {
            req,
            delivery_tag,
            redelivered: delivery.redelivered,
            remaining,
            exchange: delivery.exchange,
            message: delivery.message,
        })
    }

    /// A `get` that waits up to `wait_ms` for a message: it tries again
    /// each time the queue signals a new ready message (armed before each
    /// try, so a publish in between is not missed).
    async fn get_waiting(
        &mut self,
        req: u32,
        queue: &str,
        auto_ack: bool,
        wait_ms: u64,
    ) -> Result<Frame, BrokerError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(wait_ms.min(MAX_GET_WAIT_MS));
        loop {
            // The core checks the permission and takes the message; only
            // then is the queue's signal armed, and the queue looked at again.
            let reply = self.get(req, queue, auto_ack)?;
            if !matches!(reply, Frame::GetEmpty { .. }) {
                return Ok(reply);
            }
            let signal = self.vhost.queue(queue)?;
            let ready = signal.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            let reply = self.get(req, queue, auto_ack)?;
            if !matches!(reply, Frame::GetEmpty { .. }) {
                return Ok(reply);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return Ok(reply);
            }
        }
    }

    pub(super) fn settle(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
        how: Settle,
    ) -> Result<(), Close> {
        let taken = self.deliveries.lock().unwrap().take(delivery_tag, multiple);
        let Some(settled) = taken else {
            return Err(Close {
                code: code::PRECONDITION_FAILED,
                reason: format!(
                    "unknown delivery tag {delivery_tag} (already settled, or never delivered on this channel)"
                ),
            });
        };
        // Settled per queue, in runs: a `multiple` reject dies as one batch.
        let mut settled = settled.into_iter().peekable();
        while let Some(first) = settled.next() {
            let mut offsets = vec![first.offset];
            let mut credits = vec![first.credit];
            while let Some(next) = settled.next_if(|u| Arc::ptr_eq(&u.queue, &first.queue)) {
                offsets.push(next.offset);
                credits.push(next.credit);
            }
            self.broker
                .settle(&self.vhost, &first.queue, &offsets, how)?;
            for credit in credits.into_iter().flatten() {
                credit.add_permits(1);
            }
        }
        Ok(())
    }

    /// Consume, cancel, get, and settling deliveries.
    pub(super) async fn consuming(&mut self, frame: Frame) -> Result<(), Failure> {
        match frame {
            Frame::Consume {
                req,
                queue,
                tag,
                prefetch,
                auto_ack,
                exclusive,
            } => {
                self.consume(ConsumeRequest {
                    req,
                    queue,
                    tag,
                    prefetch,
                    auto_ack,
                    exclusive,
                    subscription: None,
                })
                .await?;
            }
            Frame::ConsumeStream {
                req,
                queue,
                tag,
                prefetch,
                auto_ack,
                group,
                mode,
                member,
                offset,
            } => {
                let subscription = Subscription {
                    group: (!group.is_empty()).then_some(group),
                    mode,
                    member: (!member.is_empty()).then_some(member),
                    offset,
                };
                self.consume(ConsumeRequest {
                    req,
                    queue,
                    tag,
                    prefetch,
                    auto_ack,
                    exclusive: false,
                    subscription: Some(subscription),
                })
                .await?;
            }
            Frame::Cancel { req, tag } => {
                self.cancel(&tag).await?;
                self.ok(req, tag, 0, 0).await;
            }
            Frame::Get {
                req,
                queue,
                auto_ack,
            } => {
                let reply = self.get(req, &queue, auto_ack)?;
                self.reply(reply).await;
            }
            Frame::GetWait {
                req,
                queue,
                auto_ack,
                wait_ms,
            } => {
                let reply = self.get_waiting(req, &queue, auto_ack, wait_ms).await?;
                self.reply(reply).await;
            }
            Frame::Ack {
                delivery_tag,
                multiple,
            } => self.settle(delivery_tag, multiple, Settle::Ack)?,
            Frame::Nack {
                delivery_tag,
                multiple,
                requeue,
            } => self.settle(
                delivery_tag,
                multiple,
                if requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                },
            )?,
            Frame::Reject {
                delivery_tag,
                requeue,
            } => self.settle(
                delivery_tag,
                false,
                if requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                },
            )?,
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}
