//! One channel: reads frames from its stream, applies them to the broker
//! and answers on the same stream. Consecutive publishes already received
//! are routed as one batch. A malformed or oversized frame, a protocol
//! violation or a refused permission closes the channel with a `Close`
//! frame naming the problem; the connection and its other channels go on.

mod administration;
mod consuming;
mod topology;
mod transactions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_protocol::{DecodeError, Frame, Message, code};
use switchyard_transport::Error as TransportError;
use switchyard_transport::FrameReader;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::confirms::{Settled, confirm_pipeline};
use super::consumer::Deliveries;
use super::refusals::RefusalLog;
use super::upload::PluginUploadBuffer;
use switchyard_core::{Broker, BrokerError, ConnectionInfo, Outcome, Principal, Vhost};

/// Most messages routed in one batch.
const MAX_PUBLISH_BATCH: usize = 1024;

struct ConsumerHandle {
    queue: Arc<switchyard_core::Queue>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConsumerHandle {
    /// Stops the consumer's task: it takes no more messages.
    async fn halt(&mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

pub struct ChannelSession {
    pub broker: Arc<Broker>,
    pub principal: Arc<Principal>,
    pub vhost: Arc<Vhost>,
    pub connection: Arc<ConnectionInfo>,
    pub out: mpsc::Sender<Frame>,
    /// The client takes `DeliverBatch` frames (protocol version 2 on).
    batched_deliveries: bool,
    confirms: Option<(mpsc::Sender<Settled>, JoinHandle<()>)>,
    deliveries: Arc<Mutex<Deliveries>>,
    consumers: HashMap<String, ConsumerHandle>,
    stashed: Option<Result<Frame, DecodeError>>,
    next_consumer: u64,
    upload: PluginUploadBuffer,
    refusals: RefusalLog,
    /// The producer group this channel joined (transactions).
    producer: Option<transactions::Membership>,
}

/// Why a channel ends.
struct Close {
    code: u16,
    reason: String,
}

impl From<BrokerError> for Close {
    fn from(e: BrokerError) -> Self {
        Close {
            code: e.code,
            reason: e.message,
        }
    }
}

impl ChannelSession {
    pub fn new(
        broker: Arc<Broker>,
        principal: Arc<Principal>,
        vhost: Arc<Vhost>,
        connection: Arc<ConnectionInfo>,
        out: mpsc::Sender<Frame>,
        batched_deliveries: bool,
    ) -> Self {
        ChannelSession {
            batched_deliveries,
            broker,
            principal,
            vhost,
            connection,
            out,
            confirms: None,
            deliveries: Arc::new(Mutex::new(Deliveries::default())),
            consumers: HashMap::new(),
            stashed: None,
            next_consumer: 1,
            upload: PluginUploadBuffer::default(),
            refusals: RefusalLog::default(),
            producer: None,
        }
    }

    pub async fn run(mut self, mut reader: FrameReader) {
        let close = loop {
            let frame = match self.stashed.take() {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => break Some(frame_error(&e)),
                None => match reader.next().await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break None,
                    Err(TransportError::Protocol(e)) => break Some(frame_error(&e)),
                    Err(e @ TransportError::FrameTimeout { timeout, .. }) => {
                        let limit = timeout.as_millis();
                        break Some(Close {
                            code: code::FRAME_ERROR,
                            reason: format!(
                                "{e}: the limit is {limit} ms (limits.frame_timeout_ms in the broker's configuration)"
                            ),
                        });
                    }
                    Err(_) => break None,
                },
            };
            let result = match frame {
                Frame::Publish {
                    seq,
                    exchange,
                    message,
                } => {
                    self.publish_gathered(&mut reader, seq, exchange, vec![message])
                        .await
                }
                Frame::PublishBatch {
                    first_seq,
                    exchange,
                    messages,
                } => self.publish(first_seq, &exchange, messages).await,
                Frame::Close { .. } => break None,
                other => self.handle(other).await,
            };
            if let Err(close) = result {
                break Some(close);
            }
        };
        if let Some(close) = &close {
            tracing::debug!(code = close.code, reason = %close.reason, "closing a channel");
            reader.stop(close.code);
        }
        self.shutdown(close).await;
    }

    /// Gathers further publishes to the same exchange already received.
    async fn publish_gathered(
        &mut self,
        reader: &mut FrameReader,
        first_seq: u64,
        exchange: String,
        mut messages: Vec<Message>,
    ) -> Result<(), Close> {
        while messages.len() < MAX_PUBLISH_BATCH {
            match reader.try_next() {
                Ok(Some(Frame::Publish {
                    seq,
                    exchange: x,
                    message,
                })) if x == exchange && seq == first_seq + messages.len() as u64 => {
                    messages.push(message)
                }
                Ok(None) => break,
                other => {
                    self.stashed = other.transpose();
                    break;
                }
            }
        }
        self.publish(first_seq, &exchange, messages).await
    }

    async fn publish(
        &mut self,
        first_seq: u64,
        exchange: &str,
        messages: Vec<Message>,
    ) -> Result<(), Close> {
        let published = self.broker.publish(&self.principal, exchange, &messages);
        let outcomes = published.outcomes;
        for (i, (message, outcome)) in messages.into_iter().zip(&outcomes).enumerate() {
            if *outcome == Outcome::Unroutable && message.is_mandatory() {
                let reason = match self.vhost.exchange(exchange) {
                    Ok(x) => x.unroutable_reason(&message.routing_key),
                    Err(e) => e.message,
                };
                let _ = self
                    .out
                    .send(Frame::Return {
                        seq: first_seq + i as u64,
                        code: code::NO_ROUTE,
                        reason,
                        exchange: exchange.into(),
                        message,
                    })
                    .await;
            } else if let Outcome::Refused(e) = outcome
                && self.confirms.is_none()
            {
                self.refusals.warn(exchange, e);
            }
        }
        if let Some((confirms, _)) = &self.confirms {
            let settled = outcomes
                .into_iter()
                .enumerate()
                .map(|(i, o)| (first_seq + i as u64, o))
                .collect();
            let _ = confirms.send(settled).await;
        }
        match published.stopped {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn reply(&self, frame: Frame) {
        let _ = self.out.send(frame).await;
    }

    async fn ok(&self, req: u32, name: String, messages: u64, consumers: u32) {
        self.reply(Frame::Ok {
            req,
            name,
            messages,
            consumers,
        })
        .await
    }

    /// Handles a request; errors are answered with an `Error` frame, and
    /// only protocol violations close the channel.
    async fn handle(&mut self, frame: Frame) -> Result<(), Close> {
        let req = frame.request_id();
        match self.apply(frame).await {
            Ok(()) => Ok(()),
            Err(Failure::Request(e)) => {
                let Some(req) = req else {
                    return Err(e.into());
                };
                self.reply(Frame::Error {
                    req,
                    code: e.code,
                    message: e.message,
                })
                .await;
                Ok(())
            }
            Err(Failure::Close(close)) => Err(close),
        }
    }

    /// Applies one request, by concern.
    async fn apply(&mut self, frame: Frame) -> Result<(), Failure> {
        match frame {
            Frame::DeclareExchange { .. }
            | Frame::DeleteExchange { .. }
            | Frame::DeclareQueue { .. }
            | Frame::DeleteQueue { .. }
            | Frame::PurgeQueue { .. }
            | Frame::Bind { .. }
            | Frame::Unbind { .. }
            | Frame::Query { .. }
            | Frame::ResetGroup { .. } => self.topology(frame).await,
            Frame::UserAdd { .. }
            | Frame::UserPassword { .. }
            | Frame::UserDelete { .. }
            | Frame::Permit { .. }
            | Frame::VhostAdd { .. }
            | Frame::VhostDelete { .. }
            | Frame::CloseConnection { .. }
            | Frame::DefinitionsExport { .. }
            | Frame::DefinitionsImport { .. }
            | Frame::CellsSet { .. } => self.administration(frame).await,
            Frame::PluginChunk { .. }
            | Frame::PluginLoad { .. }
            | Frame::PluginActivate { .. }
            | Frame::PluginRollback { .. }
            | Frame::PluginUnload { .. } => self.plugin_administration(frame).await,
            Frame::Consume { .. }
            | Frame::ConsumeStream { .. }
            | Frame::Cancel { .. }
            | Frame::Get { .. }
            | Frame::GetWait { .. }
            | Frame::Ack { .. }
            | Frame::Nack { .. }
            | Frame::Reject { .. } => self.consuming(frame).await,
            Frame::TxSelect { .. } | Frame::TxPublish { .. } | Frame::TxEnd { .. } => {
                self.transactions(frame).await
            }
            Frame::ConfirmSelect { req } => {
                if self.confirms.is_none() {
                    let (tx, rx) = mpsc::channel(1024);
                    let task =
                        tokio::spawn(confirm_pipeline(self.broker.clone(), rx, self.out.clone()));
                    self.confirms = Some((tx, task));
                }
                self.ok(req, String::new(), 0, 0).await;
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Stops consumers, returns unacknowledged deliveries to their queues,
    /// lets pending confirms go out, then says why the channel closed.
    async fn shutdown(mut self, close: Option<Close>) {
        std::mem::take(&mut self.refusals).finish();
        self.leave_producer_group();
        // Consumers stop taking messages, their unacked deliveries go back,
        // and only then do they leave their queues: the single active
        // consumer taking over finds those first, in order.
        let mut consumers = std::mem::take(&mut self.consumers);
        for handle in consumers.values_mut() {
            handle.halt().await;
        }
        let unacked = std::mem::take(&mut self.deliveries.lock().unwrap().unacked);
        let mut by_queue: HashMap<u32, (Arc<switchyard_core::Queue>, Vec<u64>)> = HashMap::new();
        for u in unacked.into_values() {
            by_queue
                .entry(u.queue.id)
                .or_insert_with(|| (u.queue.clone(), Vec::new()))
                .1
                .push(u.offset);
        }
        for (queue, offsets) in by_queue.into_values() {
            self.broker.release(&queue, &offsets);
        }
        for (tag, handle) in consumers {
            self.broker.end_consumer(&self.vhost, &handle.queue, &tag);
        }
        if let Some((confirms, task)) = self.confirms.take() {
            drop(confirms);
            let _ = task.await;
        }
        if let Some(close) = close {
            let _ = self
                .out
                .send(Frame::Close {
                    code: close.code,
                    reason: close.reason,
                })
                .await;
        }
        self.broker.close_channel(&self.connection);
    }
}

enum Failure {
    /// Answered with an `Error` frame.
    Request(BrokerError),
    /// Ends the channel.
    Close(Close),
}

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Self {
        Failure::Request(e)
    }
}

impl From<Close> for Failure {
    fn from(c: Close) -> Self {
        Failure::Close(c)
    }
}

/// A frame a client may not send on a channel: the channel ends.
fn unexpected(frame: &Frame) -> Failure {
    Failure::Close(Close {
        code: code::UNEXPECTED_FRAME,
        reason: format!("a client may not send {} on a channel", frame.name()),
    })
}

fn frame_error(e: &DecodeError) -> Close {
    Close {
        code: code::FRAME_ERROR,
        reason: format!("malformed frame: {e}"),
    }
}

/// Runs slow work (argon2) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BrokerError::new(code::INTERNAL_ERROR, e.to_string()))?
}
