//! How much topology a tenant may hold, end to end through the binary: a
//! tenant declaring queues until the process ran out of file handles
//! stopped the commit log from opening its next segment and every
//! tenant's publishes failed. Now queues stop while the broker still has
//! `limits.file_handle_reserve` handles, the log keeps rolling, and
//! queues, exchanges and bindings have per-vhost (per-exchange) limits.

use crate::support;

use support::{Broker, add_user, drain, durable};
use switchyard_client::{ExchangeOptions, Message, QueueOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_declaring_queues_cannot_starve_the_commit_log_of_file_handles() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB segments: the publishes below roll the log several times.
    let broker =
        Broker::start_with_file_limit(dir.path(), &["--set", "storage.segment_bytes=1048576"], 700);
    add_user(&broker, "mallory", "mallory-pw", "/", ["mallory\\..*"; 3]);
    let (_guest, channel) = broker.channel().await;
    channel.declare_queue("orders", durable()).await.unwrap();
    // In use before the attack: its index file is open.
    support::publish_confirmed(&channel, "orders", 1).await;

    // Mallory declares queues and puts a message in each (a queue opens
    // its index file with its first message) until she is refused.
    let url = broker.url("mallory", "mallory-pw", "/");
    let mallory = broker.connect_as(&url).await.unwrap();
    let attacker = mallory.channel().await.unwrap();
    attacker.confirm_select().await.unwrap();
    let mut refusal = None;
    for i in 0..2_000 {
        let queue = format!("mallory.{i}");
        let filled = match attacker.declare_queue(&queue, durable()).await {
            Ok(_) => match attacker
                .publish_batch("", vec![Message::new(&queue, "x")])
                .await
            {
                Ok(confirm) => confirm.await.map(drop),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = filled {
            refusal = Some((i, e.to_string()));
            break;
        }
    }
    let (declared, refusal) = refusal.expect("2,000 queues under a 700-file limit");
    assert!(
        refusal.contains("limits.file_handle_reserve"),
        "after {declared} queues: {refusal}"
    );

    // The log still opens segments: 6 MiB of confirmed messages to a
    // queue in use, all delivered.
    let body = vec![b'x'; 64 << 10];
    for _ in 0..4 {
        let batch: Vec<Message> = (0..24)
            .map(|_| Message::new("orders", body.clone()))
            .collect();
        channel
            .publish_batch("", batch)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(drain(&channel, "orders").await.len(), 97);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_exchanges_and_bindings_have_limits_that_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(
        dir.path(),
        &[
            "--set",
            "limits.max_queues_per_vhost=3",
            "--set",
            "limits.max_bindings_per_exchange=2",
        ],
    );
    let (_connection, channel) = broker.channel().await;
    for name in ["q0", "q1", "q2"] {
        channel
            .declare_queue(name, QueueOptions::default())
            .await
            .unwrap();
    }
    let (_connection, channel) = broker.channel().await;
    let refused = channel
        .declare_queue("q3", QueueOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("limits.max_queues_per_vhost") && refused.contains("holds 3 queues"),
        "{refused}"
    );
    // Declaring one that exists is no new queue.
    let (_connection, channel) = broker.channel().await;
    channel
        .declare_queue("q0", QueueOptions::default())
        .await
        .unwrap();

    channel
        .declare_exchange("events", "direct", ExchangeOptions::default())
        .await
        .unwrap();
    channel.bind("q0", "events", "a", vec![]).await.unwrap();
    channel.bind("q1", "events", "a", vec![]).await.unwrap();
    // Binding again what is bound is allowed at the limit.
    channel.bind("q1", "events", "a", vec![]).await.unwrap();
    let refused = channel
        .bind("q2", "events", "a", vec![])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("limits.max_bindings_per_exchange"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_heavy_headers_is_refused_alone_not_its_exchange() {
    let broker = Broker::start();
    let (_connection, channel) = broker.channel().await;
    channel
        .declare_exchange("events", "topic", ExchangeOptions::default())
        .await
        .unwrap();
    channel.declare_queue("calm", durable()).await.unwrap();
    channel.bind("calm", "events", "#", vec![]).await.unwrap();
    let (_heavy, heavy) = broker.channel().await;
    heavy.confirm_select().await.unwrap();
    channel.confirm_select().await.unwrap();
    for round in 0..10 {
        let mut message = Message::new("a.b", "heavy");
        message.headers.push(switchyard_client::Field::new(
            "blob",
            switchyard_client::Value::Text("x".repeat(1 << 20)),
        ));
        let refused = heavy
            .publish_batch("events", vec![message.clone(), message])
            .await
            .unwrap()
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("headers take"), "{refused}");
        // Everyone else's messages through the same exchange go on.
        let light: Vec<Message> = (0..10)
            .map(|i| Message::new("a.b", format!("light {round}.{i}")))
            .collect();
        channel
            .publish_batch("events", light)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(drain(&channel, "calm").await.len(), 100);
}
