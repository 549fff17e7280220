//! One consumer: a task that takes messages off its queue while it has
//! credit (prefetch), registers them as unacknowledged on its channel and
//! sends them, as many as are ready and its credit allows in one
//! `DeliverBatch` (up to a batch). It parks on the queue's ready signal
//! when there is nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchyard_protocol::{BatchedDelivery, Frame};
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
    /// The client takes `DeliverBatch` frames (protocol version 2 on).
    pub batched: bool,
    pub credit: Option<Arc<Semaphore>>,
    pub deliveries: Arc<Mutex<Deliveries>>,
    pub out: mpsc::Sender<Frame>,
    pub stop: watch::Receiver<bool>,
}

/// At most this many messages go in one `DeliverBatch`…
const BATCH_MESSAGES: u32 = 256;
/// …and bodies of about this many bytes (the last one may go past it).
const BATCH_BYTES: usize = 64 << 10;
/// With more frames than this already queued for the channel's writer (a
/// slow or stalled connection), deliveries go out one per frame: the queue
/// is bounded in frames, and full batches in it would multiply what a
/// stalled connection holds in memory (4,096 frames of 64 KiB).
const BATCHING_QUEUE_DEPTH: usize = 8;

impl ConsumerTask {
    pub async fn run(mut self) {
        loop {
            if !self.wait_until_active().await {
                return;
            }
            let Some(granted) = self.take_credit().await else {
                return;
            };
            // The ready signal is armed only when the queue looks empty
            // (then checked again, so a publish in between is not missed).
            let mut taken = self.take(granted);
            if matches!(&taken, Ok(batch) if batch.is_empty()) {
                let ready = self.queue.ready.notified();
                tokio::pin!(ready);
                ready.as_mut().enable();
                taken = self.take(granted);
                if matches!(&taken, Ok(batch) if batch.is_empty()) {
                    self.give_back(granted);
                    tokio::select! {
                        _ = &mut ready => continue,
                        _ = self.stop.changed() => return,
                    }
                }
            }
            let (batch, failure) = match taken {
                Ok(batch) => (batch, None),
                Err((batch, reason)) => (batch, Some(reason)),
            };
            self.give_back(granted - batch.len() as u32);
            if !batch.is_empty() && !self.send(self.register(batch)).await {
                return;
            }
            if let Some(reason) = failure {
                return self.cancelled(reason).await;
            }
        }
    }

    /// Waits for credit for one delivery, then takes what more is free
    /// without waiting (up to a batch; none more for a client before
    /// batches); `None` if told to stop meanwhile.
    async fn take_credit(&mut self) -> Option<u32> {
        let batch = if self.batched { BATCH_MESSAGES } else { 1 };
        let Some(credit) = &self.credit else {
            return Some(batch);
        };
        tokio::select! {
            permit = credit.acquire() => permit.ok()?.forget(),
            _ = self.stop.changed() => return None,
        }
        let more = (credit.available_permits() as u32).min(batch - 1);
        match credit.try_acquire_many(more) {
            Ok(permits) if more > 0 => {
                permits.forget();
                Some(1 + more)
            }
            _ => Some(1),
        }
    }

    /// Returns credit taken for deliveries that were not made.
    fn give_back(&self, unused: u32) {
        if let Some(credit) = &self.credit
            && unused > 0
        {
            credit.add_permits(unused as usize);
        }
    }

    /// Up to `limit` messages off the queue (and about [`BATCH_BYTES`]; one
    /// while the writer is backed up);
    /// on a failure, what was taken before it and why the consumer ends.
    fn take(&self, limit: u32) -> Result<Vec<Delivery>, (Vec<Delivery>, String)> {
        let queued = self.out.max_capacity() - self.out.capacity();
        let limit = if queued > BATCHING_QUEUE_DEPTH {
            1
        } else {
            limit
        };
        let mut batch = Vec::with_capacity(limit as usize);
        let mut bytes = 0;
        while batch.len() < limit as usize && bytes < BATCH_BYTES {
            match self.next() {
                Ok(Some(delivery)) => {
                    bytes += delivery.message.body.len();
                    batch.push(delivery);
                }
                Ok(None) => break,
                Err(reason) => return Err((batch, reason)),
            }
        }
        Ok(batch)
    }

    /// Queues a frame for the channel's writer; false if the channel is
    /// gone or the consumer told to stop.
    async fn send(&mut self, frame: Frame) -> bool {
        match self.out.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(frame)) => tokio::select! {
                sent = self.out.send(frame) => sent.is_ok(),
                _ = self.stop.changed() => false,
            },
            Err(mpsc::error::TrySendError::Closed(_)) => false,
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

    /// Registers the deliveries on the channel before they are sent (their
    /// tags consecutive), so a channel that ends returns them to the queue
    /// whatever happens next.
    fn register(&self, batch: Vec<Delivery>) -> Frame {
        let first_delivery_tag = {
            let mut deliveries = self.deliveries.lock().unwrap();
            let mut tags = batch.iter().map(|delivery| {
                deliveries.register((!self.auto_ack).then(|| Unacked {
                    queue: self.queue.clone(),
                    offset: delivery.offset,
                    credit: self.credit.clone(),
                }))
            });
            let first = tags.next().expect("a batch holds a delivery");
            tags.for_each(drop);
            first
        };
        let mut deliveries = batch.into_iter().map(|delivery| BatchedDelivery {
            redelivered: delivery.redelivered,
            exchange: delivery.exchange,
            message: delivery.message,
        });
        if deliveries.len() == 1 {
            let single = deliveries.next().expect("one delivery");
            return Frame::Deliver {
                tag: self.tag.clone(),
                delivery_tag: first_delivery_tag,
                redelivered: single.redelivered,
                exchange: single.exchange,
                message: single.message,
            };
        }
        Frame::DeliverBatch {
            tag: self.tag.clone(),
            first_delivery_tag,
            deliveries: deliveries.collect(),
        }
    }
}
