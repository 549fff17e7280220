//! A channel: one bidirectional QUIC stream carrying requests, publishes,
//! confirms and deliveries in order. A reader task dispatches what the
//! broker sends; a writer task batches what the application sends.
//!
//! When the channel ends — the broker closes it, its stream breaks, or the
//! whole connection is lost — every reply, confirmation and consumer still
//! waiting fails with the cause, and so does every later call: nothing
//! waits for a broker that is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_protocol::{BatchedDelivery, Frame, Message};
use tokio::sync::{mpsc, oneshot};

use crate::confirms::{ConfirmTracker, Confirmation, Settlement};
use crate::consumer::{ConsumeOptions, Consumer, Delivery};
use crate::error::Error;
use crate::topology::QueueInfo;
use crate::transactions::CheckRequest;
use switchyard_transport::{FrameReader, FrameWriter};

/// Frames queued for the writer before `publish` waits (backpressure).
/// Small: a frame may be a batch of many messages, and the writer
/// coalesces whatever is queued into one write anyway.
const OUTBOUND_FRAMES: usize = 256;
/// Deliveries buffered per consumer before the channel's reader waits
/// (at least the consumer's prefetch: see `consume`).
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

struct State {
    next_request: u32,
    requests: HashMap<u32, oneshot::Sender<Result<Frame, Error>>>,
    next_seq: u64,
    confirm_mode: bool,
    confirms: ConfirmTracker,
    consumers: HashMap<String, mpsc::Sender<Delivery>>,
    /// Where the broker's transaction checks go (a producer group joined).
    checks: Option<mpsc::Sender<CheckRequest>>,
    /// Consumers waiting for the broker's reply (which names them), by
    /// request id: the reader registers them before any delivery is read.
    starting_consumers: HashMap<u32, mpsc::Sender<Delivery>>,
    returns: Option<mpsc::UnboundedSender<Returned>>,
    closed: Option<Error>,
}

impl State {
    /// New work is refused once the channel has ended or is closing.
    fn check_open(&self) -> Result<(), Error> {
        self.closed.clone().map_or(Ok(()), Err)
    }
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

/// A channel its connection remembers without keeping it open.
pub(crate) struct WeakChannel(std::sync::Weak<Shared>);

impl WeakChannel {
    pub(crate) fn upgrade(&self) -> Option<Channel> {
        self.0.upgrade().map(|shared| Channel { shared })
    }
}

impl Channel {
    pub(crate) fn downgrade(&self) -> WeakChannel {
        WeakChannel(Arc::downgrade(&self.shared))
    }

    /// Where the broker's transaction checks go from now on.
    pub(crate) fn route_checks(&self, to: mpsc::Sender<CheckRequest>) {
        self.shared.state.lock().unwrap().checks = Some(to);
    }

    /// Where the broker's transaction checks go, if anywhere.
    pub(crate) fn check_route(&self) -> Option<mpsc::Sender<CheckRequest>> {
        self.shared.state.lock().unwrap().checks.clone()
    }

    pub(crate) fn start(
        connection: &quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        max_frame: u32,
    ) -> Self {
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
                    checks: None,
                    returns: None,
                    closed: None,
                }),
                outbound,
                max_frame,
                ended: tokio::sync::watch::channel(false).0,
            }),
        };
        // The writer only stops; the reader reports why the channel ended
        // (the broker's `Close` arrives after it stops the stream).
        tokio::spawn(FrameWriter::new(send, max_frame).pump(frames));
        let reader = channel.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            let end = tokio::select! {
                // A frame already received (say the broker's `Close`) goes first.
                biased;
                end = reader.read_until_end(FrameReader::new(recv, max_frame)) => end,
                // Also when the reader is stuck handing a delivery to a
                // consumer that nobody polls.
                lost = connection.closed() => Error::from(lost),
            };
            reader.fail(end);
        });
        channel
    }

    /// Dispatches frames until the channel ends; returns why it ended.
    async fn read_until_end(&self, mut reader: FrameReader) -> Error {
        loop {
            match reader.next().await {
                Ok(Some(frame)) => {
                    if let Some(end) = self.dispatch(frame).await {
                        return end;
                    }
                }
                Ok(None) => return Error::ConnectionLost("the broker ended the channel".into()),
                Err(e) => return e.into(),
            }
        }
    }

    /// Hands deliveries to consumer `tag`, delivery tags counting up from
    /// `first_delivery_tag`.
    async fn delivered(&self, tag: String, first_delivery_tag: u64, batch: Vec<BatchedDelivery>) {
        let consumer = self
            .shared
            .state
            .lock()
            .unwrap()
            .consumers
            .get(&tag)
            .cloned();
        let Some(consumer) = consumer else {
            return;
        };
        for (delivery_tag, delivered) in (first_delivery_tag..).zip(batch) {
            let delivery = Delivery {
                consumer_tag: tag.clone(),
                delivery_tag,
                redelivered: delivered.redelivered,
                exchange: delivered.exchange,
                message: delivered.message,
                channel: self.clone(),
            };
            // A consumer dropped without cancelling: its deliveries stay
            // unacknowledged until the channel closes.
            if consumer.send(delivery).await.is_err() {
                return;
            }
        }
    }

    /// Handles one frame from the broker; `Some` ends the channel.
    async fn dispatch(&self, frame: Frame) -> Option<Error> {
        match frame {
            Frame::Confirm { ranges } => self.settle(&ranges, Settlement::Confirmed),
            Frame::Duplicate { ranges } => self.settle(&ranges, Settlement::Duplicate),
            Frame::Refuse {
                ranges,
                code,
                reason,
            } => self.settle(
                &ranges,
                Settlement::Refused(&Error::Request { code, reason }),
            ),
            Frame::Deliver {
                tag,
                delivery_tag,
                redelivered,
                exchange,
                message,
            } => {
                let single = BatchedDelivery {
                    redelivered,
                    exchange,
                    message,
                };
                self.delivered(tag, delivery_tag, vec![single]).await
            }
            Frame::DeliverBatch {
                tag,
                first_delivery_tag,
                deliveries,
            } => self.delivered(tag, first_delivery_tag, deliveries).await,
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
            Frame::TxCheck {
                id,
                group,
                exchange,
                message,
            } => self.checked(id, group, exchange, message),
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

    fn settle(&self, ranges: &[(u64, u64)], settlement: Settlement<'_>) {
        let mut state = self.shared.state.lock().unwrap();
        for &(first, last) in ranges {
            state.confirms.settle(first, last, settlement);
        }
    }

    /// Ends the channel: everything waiting fails with `error` (the first
    /// cause wins), and consumers' streams end.
    fn fail(&self, error: Error) {
        let mut state = self.shared.state.lock().unwrap();
        for (_, waiter) in state.requests.drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        state.confirms.fail_all(&error);
        state.consumers.clear();
        state.starting_consumers.clear();
        state.returns = None;
        state.closed.get_or_insert(error);
        drop(state);
        self.shared.ended.send_replace(true);
    }

    /// Whether the channel has ended (closed by either side, or its
    /// connection gone).
    pub fn is_ended(&self) -> bool {
        *self.shared.ended.borrow()
    }

    /// Why the channel closed, if it has.
    pub fn closed_error(&self) -> Option<Error> {
        self.shared.state.lock().unwrap().closed.clone()
    }

    /// Queues a frame; resolves once the writer has room (backpressure).
    pub(crate) async fn send(&self, frame: Frame) -> Result<(), Error> {
        let permit = self.permit().await?;
        self.shared.state.lock().unwrap().check_open()?;
        permit.send(frame);
        Ok(())
    }

    /// Room for one frame in the writer's queue, or why there will be none.
    async fn permit(&self) -> Result<mpsc::Permit<'_, Frame>, Error> {
        let mut ended = self.shared.ended.subscribe();
        let ended_error = || {
            self.closed_error()
                .unwrap_or_else(|| Error::ConnectionLost("the channel's writer ended".into()))
        };
        tokio::select! {
            permit = self.shared.outbound.reserve() => permit.map_err(|_| ended_error()),
            // A writer stuck on a dead stream frees no room before QUIC
            // gives up on the connection; the channel may have failed first.
            _ = ended.wait_for(|ended| *ended) => Err(ended_error()),
        }
    }

    pub(crate) async fn request(&self, make: impl FnOnce(u32) -> Frame) -> Result<Frame, Error> {
        let permit = self.permit().await?;
        let rx = {
            let mut state = self.shared.state.lock().unwrap();
            state.check_open()?;
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
        // Checked under the lock that `fail` takes, so no confirmation is
        // tracked after the tracker was failed.
        state.check_open()?;
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
        // The broker never has more than `prefetch` deliveries of a manual-ack
        // consumer out, so a buffer that large never fills: the channel's
        // reader never waits on this consumer, and replies to requests on
        // the same channel are not held behind deliveries the application
        // has not taken yet. Without a prefetch limit (or with auto-ack) the
        // buffer stays bounded and a slow consumer slows its channel.
        let capacity = match (options.prefetch, options.auto_ack) {
            (0, _) | (_, true) => CONSUMER_BUFFER,
            (prefetch, false) => CONSUMER_BUFFER.max(prefetch as usize),
        };
        let (tx, deliveries) = mpsc::channel(capacity);
        let info = self
            .request_ok(|req| {
                self.shared
                    .state
                    .lock()
                    .unwrap()
                    .starting_consumers
                    .insert(req, tx);
                options.frame(req, queue)
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
        let reply = self
            .request(|req| Frame::Get {
                req,
                queue: queue.into(),
                auto_ack,
            })
            .await?;
        self.got(reply)
    }

    /// Like [`Channel::get`], but waits up to `wait` (at most 5 minutes)
    /// for a message to arrive: returns as soon as one is ready (long
    /// polling). The channel answers nothing else meanwhile.
    pub async fn get_wait(
        &self,
        queue: &str,
        auto_ack: bool,
        wait: std::time::Duration,
    ) -> Result<Option<(Delivery, u64)>, Error> {
        let reply = self
            .request(|req| Frame::GetWait {
                req,
                queue: queue.into(),
                auto_ack,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            })
            .await?;
        self.got(reply)
    }

    /// A `Get`'s answer: the message and how many are still ready.
    fn got(&self, reply: Frame) -> Result<Option<(Delivery, u64)>, Error> {
        match reply {
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
        // Past `send`'s check: the channel now counts as closing.
        if let Ok(permit) = self.permit().await {
            permit.send(Frame::Close {
                code: 200,
                reason: "closed by the client".into(),
            });
        }
        let _ = ended.wait_for(|ended| *ended).await;
        Ok(())
    }
}
