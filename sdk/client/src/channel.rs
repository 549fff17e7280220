//! A channel: one bidirectional QUIC stream carrying requests, publishes,
//! confirms and deliveries in order. A reader task dispatches what the
//! broker sends; a writer task batches what the application sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_protocol::{Field, Frame, Message, Query};
use tokio::sync::{mpsc, oneshot};

use crate::confirms::{ConfirmTracker, Confirmation};
use crate::consumer::{Consumer, Delivery};
use crate::error::Error;
use crate::transport::{FrameReader, FrameWriter};

/// Frames queued for the writer before `publish` waits (backpressure).
/// Small: a frame may be a batch of many messages, and the writer
/// coalesces whatever is queued into one write anyway.
const OUTBOUND_FRAMES: usize = 256;
/// Deliveries buffered per consumer before the channel's reader waits.
const CONSUMER_BUFFER: usize = 1024;
/// Room left in a frame for everything but the body.
const FRAME_OVERHEAD: usize = 64 << 10;

/// A message the broker could not route (published with `mandatory`).
#[derive(Debug, Clone)]
pub struct Returned {
    pub seq: u64,
    pub code: u16,
    pub reason: String,
    pub exchange: String,
    pub message: Message,
}

/// Options of `declare_exchange`.
#[derive(Debug, Clone, Default)]
pub struct ExchangeOptions {
    pub durable: bool,
    pub auto_delete: bool,
    /// Only check that it exists.
    pub passive: bool,
    pub arguments: Vec<Field>,
}

/// Options of `declare_queue`. Arguments include `flush` (`async` | `sync`),
/// `message-ttl` (ms), `max-length`, `overflow` (`drop-head` |
/// `reject-publish`) and `dead-letter-exchange`.
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub passive: bool,
    pub arguments: Vec<Field>,
}

/// What the broker says about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub messages: u64,
    pub consumers: u32,
}

/// Options of `consume`.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Empty: the broker generates one.
    pub tag: String,
    /// Unacknowledged deliveries allowed at once (0 = unlimited).
    pub prefetch: u32,
    /// Deliveries count as acknowledged when sent.
    pub auto_ack: bool,
    pub exclusive: bool,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            tag: String::new(),
            prefetch: 100,
            auto_ack: false,
            exclusive: false,
        }
    }
}

struct State {
    next_request: u32,
    requests: HashMap<u32, oneshot::Sender<Result<Frame, Error>>>,
    next_seq: u64,
    confirm_mode: bool,
    confirms: ConfirmTracker,
    consumers: HashMap<String, mpsc::Sender<Delivery>>,
    /// Consumers waiting for the broker's reply (which names them), by
    /// request id: the reader registers them before any delivery is read.
    starting_consumers: HashMap<u32, mpsc::Sender<Delivery>>,
    returns: Option<mpsc::UnboundedSender<Returned>>,
    closed: Option<Error>,
}

struct Shared {
    state: Mutex<State>,
    /// Becomes true when the reader has stopped.
    ended: tokio::sync::watch::Sender<bool>,
    outbound: mpsc::Sender<Frame>,
    max_frame: u32,
}

/// A handle to a channel; clones share it.
#[derive(Clone)]
pub struct Channel {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").finish_non_exhaustive()
    }
}

impl Channel {
    pub(crate) fn start(send: quinn::SendStream, recv: quinn::RecvStream, max_frame: u32) -> Self {
        let (outbound, frames) = mpsc::channel(OUTBOUND_FRAMES);
        let channel = Channel {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    next_request: 1,
                    requests: HashMap::new(),
                    next_seq: 1,
                    confirm_mode: false,
                    confirms: ConfirmTracker::default(),
                    consumers: HashMap::new(),
                    starting_consumers: HashMap::new(),
                    returns: None,
                    closed: None,
                }),
                outbound,
                max_frame,
                ended: tokio::sync::watch::channel(false).0,
            }),
        };
        tokio::spawn(FrameWriter::new(send, max_frame).pump(frames));
        let reader = channel.clone();
        tokio::spawn(async move { reader.read_loop(FrameReader::new(recv, max_frame)).await });
        channel
    }

    async fn read_loop(self, mut reader: FrameReader) {
        let end = loop {
            match reader.next().await {
                Ok(Some(frame)) => {
                    if let Some(end) = self.dispatch(frame).await {
                        break end;
                    }
                }
                Ok(None) => break Error::ConnectionLost("the broker ended the channel".into()),
                Err(e) => break e,
            }
        };
        self.fail(end);
    }

    /// Handles one frame from the broker; `Some` ends the channel.
    async fn dispatch(&self, frame: Frame) -> Option<Error> {
        match frame {
            Frame::Confirm { ranges } => {
                let mut state = self.shared.state.lock().unwrap();
                for (first, last) in ranges {
                    state.confirms.settle(first, last, None);
                }
            }
            Frame::Refuse {
                ranges,
                code,
                reason,
            } => {
                let error = Error::Request { code, reason };
                let mut state = self.shared.state.lock().unwrap();
                for (first, last) in ranges {
                    state.confirms.settle(first, last, Some(&error));
                }
            }
            Frame::Deliver {
                tag,
                delivery_tag,
                redelivered,
                exchange,
                message,
            } => {
                let consumer = self
                    .shared
                    .state
                    .lock()
                    .unwrap()
                    .consumers
                    .get(&tag)
                    .cloned();
                if let Some(consumer) = consumer {
                    let delivery = Delivery {
                        consumer_tag: tag,
                        delivery_tag,
                        redelivered,
                        exchange,
                        message,
                        channel: self.clone(),
                    };
                    // A consumer dropped without cancelling: its deliveries
                    // stay unacknowledged until the channel closes.
                    let _ = consumer.send(delivery).await;
                }
            }
            Frame::Return {
                seq,
                code,
                reason,
                exchange,
                message,
            } => {
                if let Some(returns) = &self.shared.state.lock().unwrap().returns {
                    let _ = returns.send(Returned {
                        seq,
                        code,
                        reason,
                        exchange,
                        message,
                    });
                }
            }
            Frame::Cancelled { tag, reason } => {
                tracing::info!(%tag, %reason, "consumer cancelled by the broker");
                self.shared.state.lock().unwrap().consumers.remove(&tag);
            }
            Frame::Close { code, reason } => return Some(Error::Closed { code, reason }),
            other => {
                let Some(req) = other.request_id() else {
                    return Some(Error::Unexpected(other.name()));
                };
                let waiter = {
                    let mut state = self.shared.state.lock().unwrap();
                    if let Some(consumer) = state.starting_consumers.remove(&req)
                        && let Frame::Ok { name, .. } = &other
                    {
                        state.consumers.insert(name.clone(), consumer);
                    }
                    state.requests.remove(&req)
                };
                if let Some(waiter) = waiter {
                    let _ = waiter.send(match other {
                        Frame::Error { code, message, .. } => Err(Error::Request {
                            code,
                            reason: message,
                        }),
                        frame => Ok(frame),
                    });
                }
            }
        }
        None
    }

    fn fail(&self, error: Error) {
        let mut state = self.shared.state.lock().unwrap();
        for (_, waiter) in state.requests.drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        state.confirms.fail_all(&error);
        state.consumers.clear();
        state.returns = None;
        state.closed.get_or_insert(error);
        drop(state);
        self.shared.ended.send_replace(true);
    }

    /// Why the channel closed, if it has.
    pub fn closed_error(&self) -> Option<Error> {
        self.shared.state.lock().unwrap().closed.clone()
    }

    /// Queues a frame; resolves once the writer has room (backpressure).
    pub(crate) async fn send(&self, frame: Frame) -> Result<(), Error> {
        let permit = self.permit().await?;
        permit.send(frame);
        Ok(())
    }

    async fn permit(&self) -> Result<mpsc::Permit<'_, Frame>, Error> {
        match self.shared.outbound.reserve().await {
            Ok(permit) => Ok(permit),
            Err(_) => Err(self
                .closed_error()
                .unwrap_or_else(|| Error::ConnectionLost("the channel's writer ended".into()))),
        }
    }

    async fn request(&self, make: impl FnOnce(u32) -> Frame) -> Result<Frame, Error> {
        let permit = self.permit().await?;
        let rx = {
            let mut state = self.shared.state.lock().unwrap();
            if let Some(error) = &state.closed {
                return Err(error.clone());
            }
            let req = state.next_request;
            state.next_request = state.next_request.wrapping_add(1).max(1);
            let (tx, rx) = oneshot::channel();
            state.requests.insert(req, tx);
            drop(state);
            permit.send(make(req));
            rx
        };
        rx.await
            .unwrap_or_else(|_| Err(Error::ConnectionLost("the channel ended".into())))
    }

    pub(crate) async fn request_ok(
        &self,
        make: impl FnOnce(u32) -> Frame,
    ) -> Result<QueueInfo, Error> {
        match self.request(make).await? {
            Frame::Ok {
                name,
                messages,
                consumers,
                ..
            } => Ok(QueueInfo {
                name,
                messages,
                consumers,
            }),
            other => Err(Error::Unexpected(other.name())),
        }
    }

    /// Declares an exchange whose type is a plugin name (`direct`, `topic`,
    /// `fanout`, `headers`, `consistent-hash` or one loaded at run time).
    pub async fn declare_exchange(
        &self,
        name: &str,
        kind: &str,
        options: ExchangeOptions,
    ) -> Result<(), Error> {
        self.request_ok(|req| Frame::DeclareExchange {
            req,
            name: name.into(),
            kind: kind.into(),
            durable: options.durable,
            auto_delete: options.auto_delete,
            passive: options.passive,
            arguments: options.arguments,
        })
        .await
        .map(drop)
    }

    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), Error> {
        self.request_ok(|req| Frame::DeleteExchange {
            req,
            name: name.into(),
            if_unused,
        })
        .await
        .map(drop)
    }

    /// Declares a queue (an empty name asks the broker to generate one).
    pub async fn declare_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<QueueInfo, Error> {
        self.request_ok(|req| Frame::DeclareQueue {
            req,
            name: name.into(),
            durable: options.durable,
            exclusive: options.exclusive,
            auto_delete: options.auto_delete,
            passive: options.passive,
            arguments: options.arguments,
        })
        .await
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, Error> {
        self.request_ok(|req| Frame::DeleteQueue {
            req,
            name: name.into(),
            if_unused,
            if_empty,
        })
        .await
        .map(|info| info.messages)
    }

    /// Drops a queue's ready messages; returns how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64, Error> {
        self.request_ok(|req| Frame::PurgeQueue {
            req,
            name: name.into(),
        })
        .await
        .map(|info| info.messages)
    }

    /// Binds a queue to an exchange with a key and arguments (their
    /// meaning is the exchange type's).
    pub async fn bind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: Vec<Field>,
    ) -> Result<(), Error> {
        self.binding(true, queue, exchange, key, arguments).await
    }

    /// Removes a binding made with the same queue, exchange, key and arguments.
    pub async fn unbind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: Vec<Field>,
    ) -> Result<(), Error> {
        self.binding(false, queue, exchange, key, arguments).await
    }

    async fn binding(
        &self,
        bind: bool,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: Vec<Field>,
    ) -> Result<(), Error> {
        let (queue, exchange, key) = (queue.to_string(), exchange.to_string(), key.to_string());
        self.request_ok(|req| {
            if bind {
                Frame::Bind {
                    req,
                    queue,
                    exchange,
                    key,
                    arguments,
                }
            } else {
                Frame::Unbind {
                    req,
                    queue,
                    exchange,
                    key,
                    arguments,
                }
            }
        })
        .await
        .map(drop)
    }

    /// Lists exchanges, queues, bindings, plugins, connections, users or
    /// vhosts: one row of named values each.
    pub async fn query(&self, what: Query) -> Result<Vec<Vec<Field>>, Error> {
        match self
            .request(|req| Frame::Query {
                req,
                what: what as u8,
            })
            .await?
        {
            Frame::QueryReply { rows, .. } => Ok(rows),
            other => Err(Error::Unexpected(other.name())),
        }
    }

    /// Sends an administrative request (`UserAdd`, `Permit`, `VhostAdd`…)
    /// built from the request id; resolves when the broker has applied it.
    pub async fn admin(&self, make: impl FnOnce(u32) -> Frame) -> Result<(), Error> {
        self.request_ok(make).await.map(drop)
    }

    /// Turns on publisher confirms: every later publish is confirmed or
    /// refused by the broker.
    pub async fn confirm_select(&self) -> Result<(), Error> {
        self.request_ok(|req| Frame::ConfirmSelect { req }).await?;
        self.shared.state.lock().unwrap().confirm_mode = true;
        Ok(())
    }

    /// Messages the broker returns as unroutable (published `mandatory`).
    pub fn returns(&self) -> mpsc::UnboundedReceiver<Returned> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.state.lock().unwrap().returns = Some(tx);
        rx
    }

    /// Refuses bodies that cannot fit in one frame on this connection.
    fn check_size(&self, body_bytes: usize) -> Result<(), Error> {
        let limit = (self.shared.max_frame as usize).saturating_sub(FRAME_OVERHEAD);
        if body_bytes > limit {
            return Err(Error::Request {
                code: switchyard_protocol::code::FRAME_ERROR,
                reason: format!(
                    "{body_bytes} body bytes exceed the {limit} bytes a frame can carry on this \
                     connection; send smaller messages or batches"
                ),
            });
        }
        Ok(())
    }

    /// Publishes one message. In confirm mode the returned [`Confirmation`]
    /// resolves when the broker has stored it (per the queues' flush
    /// mode); otherwise it is ready at once. Waits only for room in the
    /// channel's send buffer, so many publishes can be in flight.
    pub async fn publish(&self, exchange: &str, message: Message) -> Result<Confirmation, Error> {
        self.check_size(message.body.len())?;
        let exchange = exchange.to_string();
        self.send_publish(1, |seq| Frame::Publish {
            seq,
            exchange,
            message,
        })
        .await
    }

    /// Publishes messages in one frame (one routing call, one append group);
    /// the confirmation covers all of them.
    pub async fn publish_batch(
        &self,
        exchange: &str,
        messages: Vec<Message>,
    ) -> Result<Confirmation, Error> {
        if messages.is_empty() {
            return Ok(Confirmation::ready());
        }
        self.check_size(messages.iter().map(|m| m.body.len()).sum())?;
        let exchange = exchange.to_string();
        let count = messages.len() as u64;
        self.send_publish(count, |first_seq| Frame::PublishBatch {
            first_seq,
            exchange,
            messages,
        })
        .await
    }

    /// Takes `count` sequence numbers and queues the frame built from the
    /// first, atomically, so sequence numbers follow the order on the wire.
    async fn send_publish(
        &self,
        count: u64,
        make: impl FnOnce(u64) -> Frame,
    ) -> Result<Confirmation, Error> {
        let permit = self.permit().await?;
        let mut state = self.shared.state.lock().unwrap();
        let first = state.next_seq;
        state.next_seq += count;
        permit.send(make(first));
        Ok(if state.confirm_mode {
            state.confirms.track(first, first + count - 1)
        } else {
            Confirmation::ready()
        })
    }

    /// Starts a consumer on a queue.
    pub async fn consume(&self, queue: &str, options: ConsumeOptions) -> Result<Consumer, Error> {
        let (tx, deliveries) = mpsc::channel(CONSUMER_BUFFER);
        let info = self
            .request_ok(|req| {
                self.shared
                    .state
                    .lock()
                    .unwrap()
                    .starting_consumers
                    .insert(req, tx);
                Frame::Consume {
                    req,
                    queue: queue.into(),
                    tag: options.tag.clone(),
                    prefetch: options.prefetch,
                    auto_ack: options.auto_ack,
                    exclusive: options.exclusive,
                }
            })
            .await?;
        Ok(Consumer {
            tag: info.name,
            deliveries,
            channel: self.clone(),
        })
    }

    pub(crate) async fn cancel(&self, tag: &str) -> Result<(), Error> {
        let result = self
            .request_ok(|req| Frame::Cancel {
                req,
                tag: tag.into(),
            })
            .await;
        self.shared.state.lock().unwrap().consumers.remove(tag);
        result.map(drop)
    }

    /// Fetches one message, if the queue has one ready; also returns how
    /// many are left.
    pub async fn get(&self, queue: &str, auto_ack: bool) -> Result<Option<(Delivery, u64)>, Error> {
        match self
            .request(|req| Frame::Get {
                req,
                queue: queue.into(),
                auto_ack,
            })
            .await?
        {
            Frame::GetOk {
                delivery_tag,
                redelivered,
                remaining,
                exchange,
                message,
                ..
            } => Ok(Some((
                Delivery {
                    consumer_tag: String::new(),
                    delivery_tag,
                    redelivered,
                    exchange,
                    message,
                    channel: self.clone(),
                },
                remaining,
            ))),
            Frame::GetEmpty { .. } => Ok(None),
            other => Err(Error::Unexpected(other.name())),
        }
    }

    /// Acknowledges a delivery (and, with `multiple`, every earlier one).
    pub async fn ack(&self, delivery_tag: u64, multiple: bool) -> Result<(), Error> {
        self.send(Frame::Ack {
            delivery_tag,
            multiple,
        })
        .await
    }

    /// Closes the channel after everything sent before has been applied
    /// by the broker: unacknowledged deliveries return to their queues.
    pub async fn close(&self) -> Result<(), Error> {
        let mut ended = self.shared.ended.subscribe();
        if *ended.borrow() {
            return Ok(());
        }
        self.shared
            .state
            .lock()
            .unwrap()
            .closed
            .get_or_insert(Error::Closed {
                code: 200,
                reason: "closed by the client".into(),
            });
        self.send(Frame::Close {
            code: 200,
            reason: "closed by the client".into(),
        })
        .await
        .ok();
        let _ = ended.wait_for(|ended| *ended).await;
        Ok(())
    }
}
