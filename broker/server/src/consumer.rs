//! One consumer: a task that takes messages off its queue while it has
//! credit (prefetch), registers each as unacknowledged on its channel and
//! sends it. It parks on the queue's ready signal when there is nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchyard_protocol::Frame;
use tokio::sync::{Semaphore, mpsc, watch};

use switchyard_core::{AckMode, Broker, Delivery, Queue, Vhost};

/// A delivery waiting for ack / nack / reject.
pub struct Unacked {
    pub queue: Arc<Queue>,
    pub offset: u64,
    /// The consumer's credit, returned when this is settled.
    pub credit: Option<Arc<Semaphore>>,
}

/// The channel's unacknowledged deliveries, by delivery tag.
#[derive(Default)]
pub struct Deliveries {
    next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
}

impl Deliveries {
    /// Assigns the next delivery tag; tracks it unless auto-acked.
    pub fn register(&mut self, unacked: Option<Unacked>) -> u64 {
        self.next_tag += 1;
        if let Some(unacked) = unacked {
            self.unacked.insert(self.next_tag, unacked);
        }
        self.next_tag
    }

    /// Removes `tag` (and, with `multiple`, every earlier one); `None` if
    /// `tag` is not outstanding.
    pub fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        if !self.unacked.contains_key(&tag) {
            return None;
        }
        if !multiple {
            return self.unacked.remove(&tag).map(|u| vec![u]);
        }
        let rest = self.unacked.split_off(&(tag + 1));
        Some(
            std::mem::replace(&mut self.unacked, rest)
                .into_values()
                .collect(),
        )
    }
}

pub struct ConsumerTask {
    pub broker: Arc<Broker>,
    pub vhost: Arc<Vhost>,
    pub queue: Arc<Queue>,
    pub tag: String,
    pub auto_ack: bool,
    pub credit: Option<Arc<Semaphore>>,
    pub deliveries: Arc<Mutex<Deliveries>>,
    pub out: mpsc::Sender<Frame>,
    pub stop: watch::Receiver<bool>,
}

impl ConsumerTask {
    pub async fn run(mut self) {
        loop {
            if !self.wait_until_active().await {
                return;
            }
            if let Some(credit) = &self.credit {
                tokio::select! {
                    permit = credit.acquire() => match permit {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    },
                    _ = self.stop.changed() => return,
                }
            }
            // The ready signal is armed only when the queue looks empty
            // (then checked again, so a publish in between is not missed).
            let delivered = match self.next() {
                Ok(Some(delivered)) => delivered,
                Ok(None) => {
                    let ready = self.queue.ready.notified();
                    tokio::pin!(ready);
                    ready.as_mut().enable();
                    match self.next() {
                        Ok(Some(delivered)) => delivered,
                        Ok(None) => {
                            if let Some(credit) = &self.credit {
                                credit.add_permits(1);
                            }
                            tokio::select! {
                                _ = &mut ready => continue,
                                _ = self.stop.changed() => return,
                            }
                        }
                        Err(reason) => return self.cancelled(reason).await,
                    }
                }
                Err(reason) => return self.cancelled(reason).await,
            };
            let frame = self.register(delivered);
            match self.out.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(frame)) => tokio::select! {
                    sent = self.out.send(frame) => if sent.is_err() { return },
                    _ = self.stop.changed() => return,
                },
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }

    /// On a single-active-consumer queue, waits until this consumer is the
    /// active one (the signal is armed before the check, so a takeover in
    /// between is not missed); false if told to stop meanwhile.
    async fn wait_until_active(&mut self) -> bool {
        loop {
            let changed = self.queue.active_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.queue.is_active_consumer(&self.tag) {
                return true;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = self.stop.changed() => return false,
            }
        }
    }

    /// The next message of the queue, or why the consumer must end.
    fn next(&self) -> Result<Option<Delivery>, String> {
        if self.queue.is_deleted() {
            return Err(format!("queue '{}' was deleted", self.queue.name()));
        }
        let ack = AckMode::from_auto_ack(self.auto_ack);
        self.broker
            .take_delivery(&self.vhost, &self.queue, ack)
            .map_err(|e| {
                tracing::error!(queue = self.queue.name(), error = %e, "consumer stopped");
                format!("reading queue '{}' failed: {e}", self.queue.name())
            })
    }

    /// Tells the client the broker ended this consumer.
    async fn cancelled(&self, reason: String) {
        let _ = self
            .out
            .send(Frame::Cancelled {
                tag: self.tag.clone(),
                reason,
            })
            .await;
    }

    /// Registers the delivery on the channel before it is sent, so a
    /// channel that ends returns it to the queue whatever happens next.
    fn register(&self, delivery: Delivery) -> Frame {
        let delivery_tag = self
            .deliveries
            .lock()
            .unwrap()
            .register((!self.auto_ack).then(|| Unacked {
                queue: self.queue.clone(),
                offset: delivery.offset,
                credit: self.credit.clone(),
            }));
        Frame::Deliver {
            tag: self.tag.clone(),
            delivery_tag,
            redelivered: delivery.redelivered,
            exchange: delivery.exchange,
            message: delivery.message,
        }
    }
}
