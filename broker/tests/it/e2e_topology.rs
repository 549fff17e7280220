//! End to end through the real binary: exclusive and auto-delete queues,
//! auto-delete exchanges, max-length overflow policies, durable topology
//! across a restart, and bounded memory under a producer faster than its
//! consumer.

use crate::support;

use std::time::Duration;

use support::{Broker, bodies, drain, queue};
use switchyard_client::{
    ConsumeOptions, Error, ExchangeOptions, Field, Message, QueueOptions, Value, code,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queues_belong_to_one_connection_and_die_with_it() {
    let broker = Broker::start();
    let (owner, mine) = broker.channel().await;
    let options = QueueOptions {
        exclusive: true,
        ..QueueOptions::default()
    };
    mine.declare_queue("private", options.clone())
        .await
        .unwrap();
    let (_other, theirs) = broker.channel().await;
    let locked = theirs.declare_queue("private", options).await.unwrap_err();
    assert_eq!(locked.code(), Some(code::RESOURCE_LOCKED), "{locked}");
    let locked = theirs
        .consume("private", ConsumeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(locked.code(), Some(code::RESOURCE_LOCKED), "{locked}");
    mine.close().await.unwrap();
    owner.close().await;
    let passive = QueueOptions {
        passive: true,
        ..QueueOptions::default()
    };
    let mut gone = None;
    for _ in 0..50 {
        match theirs.declare_queue("private", passive.clone()).await {
            Err(e) => {
                gone = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(
        gone.expect("the queue is deleted with its connection")
            .code(),
        Some(code::NOT_FOUND)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_queues_and_exchanges_go_with_their_last_consumer_or_binding() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    ch.declare_queue(
        "temp",
        QueueOptions {
            auto_delete: true,
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    let consumer = ch.consume("temp", ConsumeOptions::default()).await.unwrap();
    consumer.cancel().await.unwrap();
    let passive = QueueOptions {
        passive: true,
        ..QueueOptions::default()
    };
    assert_eq!(
        ch.declare_queue("temp", passive).await.unwrap_err().code(),
        Some(code::NOT_FOUND)
    );

    let options = ExchangeOptions {
        auto_delete: true,
        ..ExchangeOptions::default()
    };
    ch.declare_exchange("fleeting", "direct", options)
        .await
        .unwrap();
    queue(&ch, "q").await;
    ch.bind("q", "fleeting", "k", vec![]).await.unwrap();
    ch.unbind("q", "fleeting", "k", vec![]).await.unwrap();
    let passive = ExchangeOptions {
        passive: true,
        ..ExchangeOptions::default()
    };
    let gone = ch
        .declare_exchange("fleeting", "direct", passive)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some(code::NOT_FOUND), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_length_drops_the_head_or_refuses_the_publish() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    let args = |overflow: &str| {
        vec![
            Field::new("max-length", Value::Int(3)),
            Field::new("overflow", Value::Text(overflow.into())),
        ]
    };
    ch.declare_queue(
        "ring",
        QueueOptions {
            arguments: args("drop-head"),
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    ch.declare_queue(
        "bounded",
        QueueOptions {
            arguments: args("reject-publish"),
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    ch.confirm_select().await.unwrap();
    for i in 0..5 {
        ch.publish("", Message::new("ring", format!("{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(bodies(&drain(&ch, "ring").await), ["2", "3", "4"]);
    for i in 0..3 {
        ch.publish("", Message::new("bounded", format!("{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let refused = ch
        .publish("", Message::new("bounded", "3"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Request {
                code: code::QUEUE_FULL,
                ..
            }
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("queue 'bounded' is full"),
        "{refused}"
    );
    assert_eq!(bodies(&drain(&ch, "bounded").await), ["0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_topology_and_messages_survive_a_restart_transient_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::start_in(dir.path(), &[]);
        let (_c, ch) = broker.channel().await;
        let durable = ExchangeOptions {
            durable: true,
            ..ExchangeOptions::default()
        };
        ch.declare_exchange("orders", "topic", durable)
            .await
            .unwrap();
        ch.declare_queue(
            "eu",
            QueueOptions {
                durable: true,
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap();
        queue(&ch, "scratch").await;
        ch.bind("eu", "orders", "eu.#", vec![]).await.unwrap();
        ch.confirm_select().await.unwrap();
        ch.publish("orders", Message::new("eu.fr", "before").persistent())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let broker = Broker::start_in(dir.path(), &[]);
    let (_c, ch) = broker.channel().await;
    let passive = QueueOptions {
        passive: true,
        ..QueueOptions::default()
    };
    assert!(
        ch.declare_queue("scratch", passive).await.is_err(),
        "a transient queue came back"
    );
    ch.confirm_select().await.unwrap();
    ch.publish("orders", Message::new("eu.de", "after").persistent())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(bodies(&drain(&ch, "eu").await), ["before", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_producer_and_a_slow_consumer_do_not_grow_broker_memory() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "firehose").await;
    let (_c2, slow) = broker.channel().await;
    let mut consumer = slow
        .consume(
            "firehose",
            ConsumeOptions {
                prefetch: 10,
                ..ConsumeOptions::default()
            },
        )
        .await
        .unwrap();
    let before = broker.rss_anon_kib();
    let body = vec![b'x'; 16 << 10];
    // 160 MB of rapid (unconfirmed) publishes; the consumer takes a few.
    for _ in 0..10_000 {
        ch.publish("", Message::new("firehose", body.clone()))
            .await
            .unwrap();
    }
    for _ in 0..10 {
        let d = consumer.next().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        d.ack().await.unwrap();
    }
    // A round trip: every publish has been applied.
    ch.query(switchyard_client::Query::Queues).await.unwrap();
    let after = broker.rss_anon_kib();
    eprintln!("broker RssAnon: {before} KiB before, {after} KiB after a 160 MB backlog");
    assert!(
        after < before + 64 * 1024,
        "broker heap grew from {before} KiB to {after} KiB for a 160 MB backlog"
    );
}
