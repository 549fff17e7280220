//! Consumers as async streams of deliveries, and the acknowledgement calls
//! a delivery carries.

use std::pin::Pin;
use std::task::{Context, Poll};

use switchyard_protocol::{Frame, GroupMode, Message, StreamOffset};
use tokio::sync::mpsc;

use crate::channel::Channel;
use crate::error::Error;

/// One message handed to this client.
#[derive(Debug)]
pub struct Delivery {
    /// The consumer it was delivered to (empty for `get`).
    pub consumer_tag: String,
    /// Identifies it for ack / nack / reject on this channel.
    pub delivery_tag: u64,
    /// It was delivered before and not acknowledged.
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: String,
    pub message: Message,
    pub(crate) channel: Channel,
}

impl Delivery {
    /// Acknowledges this delivery: the broker forgets the message.
    pub async fn ack(&self) -> Result<(), Error> {
        self.channel.ack(self.delivery_tag, false).await
    }

    /// Acknowledges this delivery and every earlier one on the channel.
    pub async fn ack_multiple(&self) -> Result<(), Error> {
        self.channel.ack(self.delivery_tag, true).await
    }

    /// Negative acknowledgement: requeue it, or drop (dead-letter) it.
    pub async fn nack(&self, requeue: bool) -> Result<(), Error> {
        self.channel
            .send(Frame::Nack {
                delivery_tag: self.delivery_tag,
                multiple: false,
                requeue,
            })
            .await
    }

    pub async fn reject(&self, requeue: bool) -> Result<(), Error> {
        self.channel
            .send(Frame::Reject {
                delivery_tag: self.delivery_tag,
                requeue,
            })
            .await
    }
}

/// A subscription to a queue: a stream of [`Delivery`]. It ends when the
/// consumer is cancelled, its queue is deleted or the channel closes; then
/// [`Consumer::error`] says why.
pub struct Consumer {
    pub(crate) tag: String,
    pub(crate) deliveries: mpsc::Receiver<Delivery>,
    pub(crate) channel: Channel,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The next delivery, `None` once the consumer has ended.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// Why the consumer ended, if it ended because of an error.
    pub fn error(&self) -> Option<Error> {
        self.channel.closed_error()
    }

    /// Stops deliveries; unacknowledged ones stay with this channel until
    /// acked or the channel closes.
    pub async fn cancel(self) -> Result<(), Error> {
        let tag = self.tag.clone();
        self.channel.cancel(&tag).await
    }
}

impl futures::Stream for Consumer {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.deliveries.poll_recv(cx)
    }
}

/// Options of `consume`.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Empty: the broker generates one.
    pub tag: String,
    /// Unacknowledged deliveries allowed at once (0 = unlimited). The
    /// client buffers up to this many (at least 1024), so requests on the
    /// same channel are answered while deliveries wait to be taken. With
    /// no limit or auto-ack, past 1024 buffered deliveries the channel's
    /// reader waits for the application, and so do replies on the channel.
    pub prefetch: u32,
    /// Deliveries count as acknowledged when sent.
    pub auto_ack: bool,
    pub exclusive: bool,
    /// Stream queues: the consumer group to join (its position is kept by
    /// the broker); `None`: a position of this consumer's own.
    pub group: Option<String>,
    /// How the group's members share the stream.
    pub mode: GroupMode,
    /// A broadcasting group's member name (default: the consumer tag):
    /// the same name resumes the same position.
    pub member: Option<String>,
    /// Stream queues: where a new position starts (default: the next
    /// message published).
    pub offset: Option<StreamOffset>,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            tag: String::new(),
            prefetch: 100,
            auto_ack: false,
            exclusive: false,
            group: None,
            mode: GroupMode::Clustering,
            member: None,
            offset: None,
        }
    }
}

impl ConsumeOptions {
    /// Whether this asks for a stream's group or offset.
    fn is_stream(&self) -> bool {
        self.group.is_some() || self.member.is_some() || self.offset.is_some()
    }

    pub(crate) fn frame(&self, req: u32, queue: &str) -> Frame {
        if !self.is_stream() {
            return Frame::Consume {
                req,
                queue: queue.into(),
                tag: self.tag.clone(),
                prefetch: self.prefetch,
                auto_ack: self.auto_ack,
                exclusive: self.exclusive,
            };
        }
        Frame::ConsumeStream {
            req,
            queue: queue.into(),
            tag: self.tag.clone(),
            prefetch: self.prefetch,
            auto_ack: self.auto_ack,
            group: self.group.clone().unwrap_or_default(),
            mode: self.mode,
            member: self.member.clone().unwrap_or_default(),
            offset: self.offset.unwrap_or_default(),
        }
    }
}
