//! End to end through the real binary, at the wire: deliveries batched in
//! `DeliverBatch` frames honour prefetch exactly (never one delivery over
//! the credit, however it is returned), their delivery tags run on without
//! gaps, a batch too large for the consumer's frame limit arrives as
//! single `Deliver` frames instead, and a client of protocol version 1
//! (before batches) gets single frames only.

use crate::support;

use std::time::Duration;

use support::raw::{self, RawConnection};
use support::{Broker, SHORT, publish_confirmed, queue};
use switchyard_client::Message;
use switchyard_protocol::{Frame, VERSION};

/// Protocol version 1: no `DeliverBatch`.
const BEFORE_BATCHES: u16 = 1;
use switchyard_transport::{FrameReader, FrameWriter};

/// A channel spoken frame by frame, with the frame limit the test asks for.
struct RawChannel {
    _raw: RawConnection,
    writer: FrameWriter,
    reader: FrameReader,
}

impl RawChannel {
    async fn open(broker: &Broker, max_frame: u32) -> RawChannel {
        Self::open_as(broker, max_frame, VERSION).await
    }

    /// Says protocol `version` in `Hello`; the broker answers with it.
    async fn open_as(broker: &Broker, max_frame: u32, version: u16) -> RawChannel {
        let raw = raw::connect(broker, version, max_frame).await;
        let Some(Frame::Welcome {
            max_frame: negotiated,
            version: spoken,
            ..
        }) = raw.welcome.clone()
        else {
            panic!("expected Welcome, got {:?}", raw.welcome);
        };
        assert_eq!(negotiated, max_frame, "the frame limit asked for");
        assert_eq!(spoken, version, "the broker speaks the client's version");
        let (send, recv) = raw.connection.open_bi().await.unwrap();
        RawChannel {
            _raw: raw,
            writer: FrameWriter::new(send, max_frame),
            reader: FrameReader::new(recv, max_frame),
        }
    }

    async fn send(&mut self, frame: Frame) {
        self.writer.send(&frame).await.unwrap();
    }

    async fn consume(&mut self, queue: &str, prefetch: u32) {
        self.send(Frame::Consume {
            req: 1,
            queue: queue.into(),
            tag: "c".into(),
            prefetch,
            auto_ack: false,
            exclusive: false,
        })
        .await;
        let ok = self.next().await;
        assert!(matches!(ok, Some(Frame::Ok { req: 1, .. })), "{ok:?}");
    }

    /// The next frame, or `None` if none comes within `SHORT`.
    async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(SHORT, self.reader.next())
            .await
            .ok()
            .map(|frame| frame.unwrap().expect("the broker keeps the channel open"))
    }

    /// Reads delivery frames until `count` deliveries have arrived (60 s at
    /// most); returns their tags and bodies and how many came batched.
    async fn deliveries(&mut self, count: usize) -> Received {
        let mut received = Received::default();
        tokio::time::timeout(Duration::from_secs(60), async {
            while received.tags.len() < count {
                match self.reader.next().await.unwrap().unwrap() {
                    Frame::Deliver {
                        delivery_tag,
                        message,
                        ..
                    } => received.push(delivery_tag, &message),
                    Frame::DeliverBatch {
                        first_delivery_tag,
                        deliveries,
                        ..
                    } => {
                        received.batches += 1;
                        for (tag, delivery) in (first_delivery_tag..).zip(&deliveries) {
                            received.push(tag, &delivery.message);
                        }
                    }
                    other => panic!("expected deliveries, got {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} of {count} deliveries arrived", received.tags.len()));
        received
    }
}

#[derive(Default)]
struct Received {
    tags: Vec<u64>,
    bodies: Vec<String>,
    batches: usize,
}

impl Received {
    fn push(&mut self, tag: u64, message: &Message) {
        self.tags.push(tag);
        self.bodies
            .push(String::from_utf8(message.body.to_vec()).unwrap());
    }
}

fn numbered(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_deliveries_honour_prefetch_exactly() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "work").await;
    // Bodies "0".."999", in order.
    publish_confirmed(&ch, "work", 1000).await;
    let mut raw = RawChannel::open(&broker, 1 << 20).await;
    raw.consume("work", 100).await;

    // Exactly the prefetch, in batches, tags 1..=100 in order.
    let first = raw.deliveries(100).await;
    assert_eq!(first.tags, (1..=100).collect::<Vec<_>>());
    assert_eq!(first.bodies, numbered(0..=99));
    assert!(
        first.batches > 0,
        "100 ready messages and credit for 100 came without a single DeliverBatch"
    );
    assert_eq!(raw.next().await, None, "a delivery beyond prefetch 100");

    // Acknowledging 40 at once returns exactly 40 deliveries of credit.
    raw.send(Frame::Ack {
        delivery_tag: 40,
        multiple: true,
    })
    .await;
    let second = raw.deliveries(40).await;
    assert_eq!(second.tags, (101..=140).collect::<Vec<_>>());
    assert_eq!(second.bodies, numbered(100..=139));
    assert_eq!(raw.next().await, None, "more than 40 after acking 40");

    // One ack, one delivery; a reject without requeue is credit too.
    raw.send(Frame::Ack {
        delivery_tag: 41,
        multiple: false,
    })
    .await;
    assert_eq!(raw.deliveries(1).await.tags, [141]);
    raw.send(Frame::Reject {
        delivery_tag: 42,
        requeue: false,
    })
    .await;
    assert_eq!(raw.deliveries(1).await.tags, [142]);
    assert_eq!(raw.next().await, None, "more deliveries than settled");

    // A requeued delivery comes back within the same credit.
    raw.send(Frame::Nack {
        delivery_tag: 43,
        multiple: false,
        requeue: true,
    })
    .await;
    let again = raw.deliveries(1).await;
    assert_eq!(again.tags, [143]);
    assert_eq!(
        again.bodies,
        ["42"],
        "the requeued message is delivered first"
    );
    assert_eq!(raw.next().await, None, "more deliveries than settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_frame_limit_arrives_as_single_deliveries() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "big").await;
    ch.confirm_select().await.unwrap();
    // 100 bodies of 1,500 bytes: a batch of 64 KiB of bodies (the
    // broker's batch size) is over the smallest frame limit, 64 KiB.
    let messages = (0..100)
        .map(|i| Message::new("big", format!("{i:04}").repeat(375)))
        .collect();
    ch.publish_batch("", messages).await.unwrap().await.unwrap();

    let mut raw = RawChannel::open(&broker, 64 << 10).await;
    raw.consume("big", 0).await;
    let received = raw.deliveries(100).await;
    assert_eq!(received.tags, (1..=100).collect::<Vec<_>>());
    let expected: Vec<String> = (0..100).map(|i| format!("{i:04}").repeat(375)).collect();
    assert_eq!(received.bodies, expected);
    assert_eq!(raw.next().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_from_before_batches_gets_single_deliveries() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "work").await;
    publish_confirmed(&ch, "work", 300).await;
    let mut raw = RawChannel::open_as(&broker, 1 << 20, BEFORE_BATCHES).await;
    raw.consume("work", 200).await;
    let received = raw.deliveries(200).await;
    assert_eq!(received.batches, 0, "a version 1 client got a DeliverBatch");
    assert_eq!(received.tags, (1..=200).collect::<Vec<_>>());
    assert_eq!(received.bodies, numbered(0..=199));
    assert_eq!(raw.next().await, None, "a delivery beyond prefetch 200");
}
